package attester

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/verifier/client"
)

// Attester runs enrollment and attestation rounds for one node.
type Attester struct {
	TPM    TPM
	Client *client.Client
	Node   string
	List   List
	// EventLog returns the firmware event log, or nil if there is none.
	EventLog func() ([]byte, error)
	Logger   *slog.Logger
}

// Enroll enrols the TPM's AK with the verifier: it sends the EK, its
// certificate and chain and the AK, activates the credential the verifier
// answers with, and returns the secret to it.
func (a *Attester) Enroll(ctx context.Context) error {
	req, err := EnrollRequest(a.TPM)
	if err != nil {
		return err
	}
	ch, err := a.Client.Enroll(ctx, a.Node, req)
	if err != nil {
		return fmt.Errorf("attester: enroll: %w", err)
	}
	secret, err := a.TPM.Activate(&ch.Credential)
	if err != nil {
		return err
	}
	if _, err := a.Client.Activate(ctx, a.Node, &attest.ActivateRequest{Token: ch.Token, Secret: secret}); err != nil {
		return fmt.Errorf("attester: activate: %w", err)
	}
	return nil
}

// EnrollRequest reads what enrollment sends from the TPM.
func EnrollRequest(t TPM) (*attest.EnrollRequest, error) {
	ek, err := t.Endorsement()
	if err != nil {
		return nil, err
	}
	ak, err := t.AKPublic()
	if err != nil {
		return nil, err
	}
	return &attest.EnrollRequest{
		EKPublic: tpm2.Marshal(ek.Public), EKCertificate: ek.Certificate, EKChain: ek.Chain, AKPublic: tpm2.Marshal(*ak),
	}, nil
}

// maxRestarts bounds the rounds one Round call runs when the verifier
// answers that the node restarted (it then wants the list from entry 0).
const maxRestarts = 3

// maxOvertaken bounds the fresh challenges one Round call asks for after
// a challenge was used or expired.
const maxOvertaken = 3

// Round runs one attestation round and returns the verifier's verdict. If
// the node is not enrolled (the verifier lost it, or this is the first
// round) it enrols first.
func (a *Attester) Round(ctx context.Context) (*attest.Result, error) {
	enrolled := false
	overtaken := 0
	for i := 0; ; i++ {
		res, err := a.round(ctx)
		var ce *client.Error
		if errors.As(err, &ce) && ce.ID == "enroll.required" && !enrolled {
			if err := a.Enroll(ctx); err != nil {
				return nil, err
			}
			enrolled = true
			continue
		}
		// The challenge was used (a copy of this evidence sent again to
		// another replica after its first answer was lost: the verdict is
		// stored, the attester did not hear it) or expired while the
		// replicas were tried: a fresh round.
		if errors.As(err, &ce) && (ce.ID == "challenge.used" || ce.ID == "challenge.expired") && overtaken < maxOvertaken {
			overtaken++
			i--
			a.logger().Info("challenge used or expired: attesting again with a fresh one", "node", a.Node, "id", ce.ID)
			continue
		}
		if err != nil || res.Verdict != attest.VerdictRestart || i+1 >= maxRestarts {
			return res, err
		}
		a.logger().Info("the verifier saw a TPM reset: attesting from the first entry", "node", a.Node)
	}
}

func (a *Attester) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.Default()
	}
	return a.Logger
}

// banksAndPCRs returns the TPM's banks imago can verify and the PCRs the
// list extends.
func (a *Attester) banksAndPCRs() ([]pcr.Bank, []int, error) {
	banks, err := a.TPM.Banks()
	if err != nil {
		return nil, nil, err
	}
	pcrs, err := a.List.PCRs()
	if err != nil {
		return nil, nil, err
	}
	var known []pcr.Bank
	for _, b := range banks {
		if b.Known() {
			known = append(known, b)
		}
	}
	return known, pcrs, nil
}

func (a *Attester) round(ctx context.Context) (*attest.Result, error) {
	banks, pcrs, err := a.banksAndPCRs()
	if err != nil {
		return nil, err
	}
	req := &attest.ChallengeRequest{ListPCRs: pcrs}
	for _, b := range banks {
		req.Banks = append(req.Banks, b.String())
	}
	ch, err := a.Client.Challenge(ctx, a.Node, req)
	if err != nil {
		return nil, fmt.Errorf("attester: challenge: %w", err)
	}
	ev, err := a.evidence(ch.Nonce, ch.Selection, ch.Offset, ch.EventLog)
	if err != nil {
		return nil, err
	}
	ev.Token = ch.Token
	res, err := a.Client.Evidence(ctx, a.Node, ev)
	if err != nil {
		return nil, fmt.Errorf("attester: evidence: %w", err)
	}
	return res, nil
}

// evidence quotes, then reads the list (after the quote: the list may run
// ahead of it, never behind) and the event log.
func (a *Attester) evidence(nonce []byte, sel quote.Selection, offset uint64, eventLog bool) (*attest.Evidence, error) {
	q, err := a.TPM.Quote(nonce, sel)
	if err != nil {
		return nil, err
	}
	list, err := a.List.ReadFrom(offset)
	if errors.Is(err, ErrShortList) {
		a.logger().Warn("the list is shorter than the verifier's offset (a reboot?); sending no entries", "node", a.Node, "offset", offset)
		list, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	ev := &attest.Evidence{Quote: attest.Quote{Attest: q.Attest, Signature: q.Signature}, PCRs: attest.PCRValues(q.PCRs), Offset: offset, List: list}
	if eventLog && a.EventLog != nil {
		if ev.EventLog, err = a.EventLog(); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// Offline makes self-contained evidence for `imago verifier check`: a
// quote over PCR 0-10 and the list's PCRs in every bank with the given
// nonce, the whole list, the event log, and the AK's public area.
func (a *Attester) Offline(nonce []byte) (*attest.Evidence, error) {
	if len(nonce) == 0 || len(nonce) > 64 {
		return nil, fmt.Errorf("attester: offline: nonce of %d bytes (want 1 to 64)", len(nonce))
	}
	banks, pcrs, err := a.banksAndPCRs()
	if err != nil {
		return nil, err
	}
	sel := quote.NewSelection(banks, append([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, pcrs...))
	ev, err := a.evidence(nonce, sel, 0, true)
	if err != nil {
		return nil, err
	}
	ak, err := a.TPM.AKPublic()
	if err != nil {
		return nil, err
	}
	ev.Nonce = nonce
	ev.AKPublic = tpm2.Marshal(*ak)
	return ev, nil
}

// EventLogFile returns an EventLog function reading path, bounded; a
// missing file is no event log.
func EventLogFile(path string) func() ([]byte, error) {
	return func() ([]byte, error) {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("attester: event log: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, attest.MaxEventLogSize+1))
		if err != nil {
			return nil, fmt.Errorf("attester: event log: %w", err)
		}
		if len(b) > attest.MaxEventLogSize {
			return nil, fmt.Errorf("attester: event log %s larger than %d bytes", path, attest.MaxEventLogSize)
		}
		return b, nil
	}
}

// Backoff bounds for Run's retries after errors.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// Run enrols, then attests every interval until ctx ends, logging each
// verdict; errors (verifier unreachable, a TPM error) are logged and
// retried with backoff. It returns nil when ctx ends.
func (a *Attester) Run(ctx context.Context, interval time.Duration, report func(*attest.Result, error)) error {
	log := a.logger()
	backoff := minBackoff
	wait := time.Duration(0)
	enrolled := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		var (
			res *attest.Result
			err error
		)
		if !enrolled {
			err = a.Enroll(ctx)
			enrolled = err == nil
		}
		if err == nil {
			res, err = a.Round(ctx)
		}
		if report != nil {
			report(res, err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("attestation round failed", "node", a.Node, "err", err, "retry_in", backoff.String())
			wait = backoff
			backoff = min(2*backoff, maxBackoff)
			var ce *client.Error
			if errors.As(err, &ce) && ce.Status < 500 {
				enrolled = false // enrol again next time
			}
			continue
		}
		backoff = minBackoff
		wait = interval
		switch res.Verdict {
		case attest.VerdictPass:
			log.Info("attestation passed", "node", a.Node, "round", res.Round, "entries", res.Entries, "state", res.State)
		default:
			log.Warn("attestation failed", "node", a.Node, "round", res.Round, "verdict", res.Verdict, "state", res.State, "failures", len(res.Failures))
			for _, f := range res.Failures {
				log.Warn("failure", "node", a.Node, "id", f.ID, "entry", f.Entry, "path", f.Path, "detail", f.Detail)
			}
		}
	}
}
