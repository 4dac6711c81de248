package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/appraise"
	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/store"
)

// policyID is the sha256 of the policy, its keyrings and its options.
func policyID(a *attest.NodeAdd, opts []byte) string {
	h := sha256.New()
	h.Write(opts)
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(len(a.RuntimePolicy))))
	h.Write([]byte{0})
	h.Write(a.RuntimePolicy)
	for _, k := range a.Keyrings {
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(len(k))))
		h.Write([]byte{0})
		h.Write(k)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) handleNodeAdd(w http.ResponseWriter, r *http.Request, body []byte) error {
	a, err := attest.DecodeNodeAdd(body)
	if err != nil {
		return badRequest(err)
	}
	po := appraise.PolicyOptions{PCR: a.PCR, PolicyKey: a.PolicyKey}
	if po.PCR == 0 {
		po.PCR = imaPCR
	}
	opts, _ := json.Marshal(po)
	id := policyID(a, opts)
	if _, err := appraise.CompilePolicy(a.RuntimePolicy, a.Keyrings, po); err != nil {
		if errors.Is(err, appraise.ErrNeedsKey) {
			return apiErr(http.StatusBadRequest, "policy.needs_key", "the runtime policy is signed (a DSSE envelope): give the key it was signed with (--policy-key)")
		}
		return apiErr(http.StatusBadRequest, "policy.invalid", "%v", err)
	}
	if err := s.st.PutPolicy(r.Context(), store.Policy{ID: id, Body: a.RuntimePolicy, Keyrings: a.Keyrings, Options: opts}); err != nil {
		return err
	}
	created, changed, err := s.st.AddNode(r.Context(), a.Node, id, a.AllowEKWithoutCert)
	if err != nil {
		return err
	}
	switch {
	case created:
		s.log.Info("node added", "node", a.Node, "policy", id)
	case changed:
		s.log.Info("node changed: starts over", "node", a.Node, "policy", id)
	}
	n, err := s.getNode(r.Context(), a.Node)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.view(r.Context(), n, nil))
	return nil
}

func (s *Server) handleNodeList(w http.ResponseWriter, r *http.Request, _ []byte) error {
	nodes, err := s.st.ListNodes(r.Context())
	if err != nil {
		return err
	}
	out := struct {
		Nodes []attest.NodeView `json:"nodes"`
	}{Nodes: []attest.NodeView{}}
	for _, n := range nodes {
		out.Nodes = append(out.Nodes, s.view(r.Context(), n, nil))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// defaultHistory is how many verdicts node show returns without ?history=.
const defaultHistory = 20

func (s *Server) handleNodeShow(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := nodeName(r)
	if err != nil {
		return err
	}
	limit := defaultHistory
	if v := r.URL.Query().Get("history"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 || limit > 10000 {
			return apiErr(http.StatusBadRequest, "request.history", "history=%q: want 0 to 10000", v)
		}
	}
	n, err := s.getNode(r.Context(), name)
	if err != nil {
		return err
	}
	h, err := s.st.History(r.Context(), name, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.view(r.Context(), n, h))
	return nil
}

func (s *Server) handleNodeRemove(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := nodeName(r)
	if err != nil {
		return err
	}
	if err := s.st.RemoveNode(r.Context(), name); errors.Is(err, store.ErrNotFound) {
		return apiErr(http.StatusNotFound, "node.unknown", "no node %q", name)
	} else if err != nil {
		return err
	}
	s.log.Info("node removed", "node", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// view is a node as the API shows it.
func (s *Server) view(ctx context.Context, n *store.Node, history []store.Verdict) attest.NodeView {
	v := attest.NodeView{
		Node: n.Name, State: n.State, Failures: n.Failures, Enrolled: n.Enrolled(), Round: n.Round,
		PolicyID: n.PolicyID, EK: n.EKID, LastSeen: rfc3339(n.LastSeen), Created: rfc3339(n.Created),
		AllowNoCert: n.AllowNoCert, Verdict: n.Verdict, Updated: rfc3339(n.Updated),
	}
	if p, err := s.policy(ctx, n.PolicyID); err == nil {
		v.PCR = p.PCR()
	}
	var st appraise.State
	if err := unmarshalState(n.Appraisal, &st); err == nil {
		v.Entries = st.Next()
		if st.Clock != nil {
			v.TPM = &attest.TPMView{Clock: st.Clock.Clock, ResetCount: st.Clock.ResetCount, RestartCount: st.Clock.RestartCount}
		}
	}
	for _, h := range history {
		v.History = append(v.History, attest.HistoryRecord{Round: h.Round, Time: rfc3339(h.Time), Verdict: h.Verdict, Entries: h.Entries, Failures: h.Failures})
	}
	return v
}

// akOf decodes a node's stored AK.
func akOf(n *store.Node) (*tpm2.TPMTPublic, error) {
	return quote.ParsePublic(n.AKPublic)
}
