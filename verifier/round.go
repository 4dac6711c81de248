package verifier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/appraise"
	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/ear"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/store"
)

// nonceSize is the size of a quote nonce (Keylime's push model uses 128
// bits; a TPM takes up to 64 bytes).
const nonceSize = 32

// bootPCRs are the PCRs every quote covers: the firmware's 0-9, which the
// boot aggregate is made of.
var bootPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

// imaPCR is the kernel's IMA PCR.
const imaPCR = 10

// maxFailures bounds the failures kept on a node (the history has every
// round's own).
const maxFailures = 1000

func unmarshalState(b []byte, st *appraise.State) error {
	s, err := appraise.ParseState(b)
	*st = s
	return err
}

// selection is PCR 0-9, 10, the node's list PCR and the attester's list
// PCRs, in every bank the attester has that imago can compute, in the
// attester's order.
func selection(req *attest.ChallengeRequest, listPCR int) (quote.Selection, error) {
	var banks []pcr.Bank
	for _, name := range req.Banks {
		b, err := pcr.ParseBank(name)
		if err != nil || !b.Known() || slices.Contains(banks, b) {
			continue
		}
		banks = append(banks, b)
	}
	if len(banks) == 0 {
		return nil, apiErr(http.StatusBadRequest, "challenge.banks", "no PCR bank imago can verify among %v", req.Banks)
	}
	idx := append(slices.Clone(bootPCRs), imaPCR, listPCR)
	idx = append(idx, req.ListPCRs...)
	return quote.NewSelection(banks, idx), nil
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, req, err := nodeRequest(r, body, attest.DecodeChallengeRequest)
	if err != nil {
		return err
	}
	info, ok := s.challenges.get(name)
	if !ok {
		if info, err = s.readChallengeInfo(r.Context(), name); err != nil {
			return err
		}
	}
	pol, err := s.policy(r.Context(), info.policyID)
	if err != nil {
		return err
	}
	sel, err := selection(req, pol.PCR())
	if err != nil {
		return err
	}
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	expires := s.now().Add(s.cfg.ChallengeTTL)
	c := &challengeClaims{Node: name, Round: info.round, Nonce: nonce, Selection: sel, Offset: info.offset, EventLog: info.eventLog, Expires: expires.UnixMilli()}
	tok, err := signToken(s.st.Secret(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, &attest.Challenge{Token: tok, Nonce: nonce, Selection: sel, Offset: c.Offset, EventLog: c.EventLog, Expires: rfc3339(expires)})
	return nil
}

// readChallengeInfo reads what a challenge needs of a node from the store,
// and remembers it.
func (s *Server) readChallengeInfo(ctx context.Context, name string) (challengeInfo, error) {
	n, err := s.getNode(ctx, name)
	if err != nil {
		return challengeInfo{}, err
	}
	if !n.Enrolled() {
		return challengeInfo{}, apiErr(http.StatusConflict, "enroll.required", "node %s is not enrolled", name)
	}
	// Only the cursor and the boot-log flag are needed here.
	var st struct {
		Verify struct {
			Next uint64 `json:"next"`
		} `json:"verify"`
		BootLog bool `json:"boot_log"`
	}
	if len(n.Appraisal) > 0 {
		if err := json.Unmarshal(n.Appraisal, &st); err != nil {
			return challengeInfo{}, err
		}
	}
	info := challengeInfo{round: n.Round, policyID: n.PolicyID, offset: st.Verify.Next, eventLog: !st.BootLog}
	s.challenges.put(name, info)
	return info, nil
}

// current reports whether a challenge is what the node's row, held for the
// round, asks for now: its round, the list's cursor and the boot log's
// flag, and the policy's list PCR in every bank. The challenge may have
// been made from what this replica remembered (challengeInfos).
func (s *Server) current(ctx context.Context, c *challengeClaims, n *store.Node, prev *appraise.State) (bool, error) {
	if n.Round != c.Round || !n.Enrolled() || c.Offset != prev.Next() || c.EventLog == prev.BootLog {
		return false, nil
	}
	pol, err := s.policy(ctx, n.PolicyID)
	if err != nil {
		return false, err
	}
	for _, b := range c.Selection {
		if !slices.Contains(b.PCRs, pol.PCR()) {
			return false, nil
		}
	}
	return true, nil
}

func (s *Server) handleEvidence(w http.ResponseWriter, r *http.Request, body []byte) error {
	start := time.Now()
	name, ev, err := nodeRequest(r, body, attest.DecodeEvidence)
	if err != nil {
		return err
	}
	c, err := openToken(s.st.Secret(), ev.Token, s.now())
	switch {
	case errors.Is(err, errTokenExpired):
		return apiErr(http.StatusGone, "challenge.expired", "the challenge expired; ask for a new one")
	case err != nil || c.Node != name:
		return apiErr(http.StatusBadRequest, "challenge.invalid", "not a challenge this verifier issued for node %s", name)
	}
	// The node is held while the round is judged and written: rounds of
	// one node, at any replica, happen one after the other.
	var (
		n   *store.Node
		res *attest.Result
		out *appraise.Outcome
		wr  *store.RoundWrite
	)
	err = s.st.Round(r.Context(), name, func(node *store.Node) (*store.RoundWrite, error) {
		n = node
		var prev appraise.State
		if err := unmarshalState(n.Appraisal, &prev); err != nil {
			return nil, err
		}
		if ok, err := s.current(r.Context(), c, n, &prev); err != nil {
			return nil, err
		} else if !ok {
			return nil, apiErr(http.StatusConflict, "challenge.used", "the challenge was used or overtaken (node round %d, challenge round %d); ask for a new one", n.Round, c.Round)
		}
		var err error
		if res, out, err = s.appraise(r.Context(), n, prev, appraise.Challenge{Nonce: c.Nonce, Selection: c.Selection, Offset: c.Offset, EventLog: c.EventLog}, ev); err != nil {
			return nil, err
		}
		wr = s.next(n, res, out)
		wr.Replica = s.fleet.Name()
		return wr, nil
	})
	if err != nil {
		// What this replica remembered of the node may be why.
		s.challenges.forget(name)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apiErr(http.StatusNotFound, "node.unknown", "no node %q (add it with imago verifier node add)", name)
	case errors.Is(err, store.ErrConflict):
		return apiErr(http.StatusConflict, "challenge.used", "another round of node %s committed first; ask for a new challenge", name)
	case errors.Is(err, store.ErrBusy):
		return apiErr(http.StatusServiceUnavailable, "round.busy", "node %s is in a round at another replica; retry", name)
	case err != nil:
		return err
	}
	res.State, res.Failures, res.Round = wr.State, wr.VerdictFailures, wr.Round+1
	s.challenges.put(name, challengeInfo{round: wr.Round + 1, policyID: n.PolicyID, offset: out.State.Next(), eventLog: !out.State.BootLog})
	s.metrics.round(res, out, c.Offset, time.Since(start))
	s.logRound(n, res, out)
	s.signEAR(res, n.PolicyID, out, c.Nonce)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// appraise judges evidence against a node in the state prev.
func (s *Server) appraise(ctx context.Context, n *store.Node, prev appraise.State, ch appraise.Challenge, ev *attest.Evidence) (*attest.Result, *appraise.Outcome, error) {
	pol, err := s.policy(ctx, n.PolicyID)
	if err != nil {
		return nil, nil, err
	}
	ak, err := s.akKey(n.AKPublic)
	if err != nil {
		return nil, nil, err
	}
	out := appraise.Round(pol, ak, prev, ch, ev)
	res := &attest.Result{Node: n.Name, Verdict: out.Verdict, Failures: out.Failures, Entries: out.State.Next()}
	if res.Failures == nil {
		res.Failures = []attest.Failure{}
	}
	return res, &out, nil
}

// next is the node's row after a round: the verdict's state, with
// failures the node's TPM vouched for kept until a reboot or a policy
// change.
func (s *Server) next(n *store.Node, res *attest.Result, out *appraise.Outcome) *store.RoundWrite {
	st := out.State.AppendJSON(nil)
	w := &store.RoundWrite{Node: n.Name, Round: n.Round, Appraisal: st, Time: s.now(), Verdict: out.Verdict,
		Entries: out.State.Next(), VerdictFailures: res.Failures, State: n.State, Sticky: n.Sticky, Failures: n.Failures}
	reset := out.Authentic && out.Change != quote.Same
	if reset {
		w.Sticky, w.Failures = false, nil
		if n.State == attest.StateFail {
			w.State = attest.StateEnrolling
		}
	}
	switch out.Verdict {
	case attest.VerdictPass:
		if !w.Sticky {
			w.State, w.Failures = attest.StatePass, nil
		}
	case attest.VerdictFail:
		w.State = attest.StateFail
		if out.Authentic {
			if !w.Sticky {
				w.Failures = nil
			}
			w.Sticky = true
			w.Failures = append(slices.Clone(w.Failures), res.Failures...)
		} else if !w.Sticky {
			w.Failures = res.Failures
		}
		if len(w.Failures) > maxFailures {
			w.Failures = w.Failures[:maxFailures]
		}
	}
	return w
}

func (s *Server) logRound(n *store.Node, res *attest.Result, out *appraise.Outcome) {
	switch {
	case out.Verdict == attest.VerdictRestart:
		s.log.Info("node rebooted: starting over", "node", n.Name, "change", out.Change.String())
	case out.Verdict == attest.VerdictFail:
		for _, f := range res.Failures {
			s.log.Warn("attestation failed", "node", n.Name, "round", res.Round, "id", f.ID, "entry", f.Entry, "path", f.Path, "detail", f.Detail, "authentic", out.Authentic)
		}
	case n.State != res.State:
		s.log.Info("node state", "node", n.Name, "state", res.State, "round", res.Round, "entries", res.Entries)
	default:
		s.log.Debug("attestation passed", "node", n.Name, "round", res.Round, "entries", res.Entries)
	}
}

func (s *Server) signEAR(res *attest.Result, policyID string, out *appraise.Outcome, nonce []byte) {
	if s.cfg.EAR == nil {
		return
	}
	boot := slices.ContainsFunc(res.Failures, func(f attest.Failure) bool { return f.ID == appraise.IDBootPCRMismatch })
	tok, err := s.cfg.EAR.Issue(ear.Input{Node: res.Node, Result: res, PolicyID: policyID, Authentic: out.Authentic, BootFailed: boot, Time: s.now(), Nonce: nonce})
	if err != nil {
		s.log.Error("signing EAR", "node", res.Node, "err", err)
		return
	}
	res.EAR = tok
}

// handleCheck judges offline evidence (imago attest --offline) against a
// node's enrolled AK and policy, from the list's first entry, without
// changing the node.
func (s *Server) handleCheck(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, ev, err := nodeRequest(r, body, attest.DecodeEvidence)
	if err != nil {
		return err
	}
	if len(ev.Nonce) == 0 || ev.Offset != 0 {
		return apiErr(http.StatusBadRequest, "check.evidence", "offline evidence carries its nonce and the whole list (offset 0)")
	}
	n, err := s.getNode(r.Context(), name)
	if err != nil {
		return err
	}
	if !n.Enrolled() {
		return apiErr(http.StatusConflict, "enroll.required", "node %s is not enrolled", name)
	}
	if len(ev.AKPublic) > 0 {
		ak, err := quote.ParsePublic(ev.AKPublic)
		stored, err2 := akOf(n)
		if err != nil || err2 != nil || !bytes.Equal(tpm2.Marshal(*ak), tpm2.Marshal(*stored)) {
			return apiErr(http.StatusConflict, "check.ak", "the evidence names another AK than node %s's", name)
		}
	}
	// The verifier did not choose the selection: it takes the quote's,
	// which must cover PCR 0-10 in some bank.
	q, err := quote.Parse(ev.Quote.Attest, ev.Quote.Signature)
	if err != nil {
		return apiErr(http.StatusBadRequest, "quote.malformed", "%v", err)
	}
	covered := slices.ContainsFunc(q.Selection, func(b quote.BankPCRs) bool {
		for i := 0; i <= imaPCR; i++ {
			if !slices.Contains(b.PCRs, i) {
				return false
			}
		}
		return true
	})
	if !covered {
		return apiErr(http.StatusBadRequest, "check.selection", "the quote does not cover PCR 0-10 in any bank")
	}
	res, out, err := s.appraise(r.Context(), n, appraise.State{}, appraise.Challenge{Nonce: ev.Nonce, Selection: q.Selection, EventLog: true}, ev)
	if err != nil {
		return err
	}
	res.State = out.Verdict
	s.signEAR(res, n.PolicyID, out, ev.Nonce)
	writeJSON(w, http.StatusOK, res)
	return nil
}
