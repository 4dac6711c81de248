package verifier

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/imahost"
	"github.com/imago-ima/imago/internal/pgtest"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/verifier/client"
)

// TestRememberedChallenges: a replica makes challenges from what it
// remembers of a node; when another replica changed the node meanwhile
// (rounds, or the node removed, added again and attested back to the same
// round with another list cursor), the challenge it made is refused as used
// and changes nothing, and the attester's next challenge is right.
func TestRememberedChallenges(t *testing.T) {
	url := pgtest.Start(t).CreateDatabase(t, "verifier")
	ca, _ := softtpm.NewCA("test")
	roots := enroll.NewRoots([]*x509.Certificate{ca.Cert})
	va, vb := startVerifier(t, url, roots, nil), startVerifier(t, url, roots, nil)
	cla, _ := client.New(va.URL, client.Options{CA: va.CA})
	clb, _ := client.New(vb.URL, client.Options{CA: vb.CA})
	ctx := context.Background()
	tp, _ := softtpm.New(ca, "n")
	h, _ := imahost.NewBooted(tp)
	extra := map[string]string{}
	for i := range 40 {
		extra[fmt.Sprintf("/f%d", i)] = sha256hex(fmt.Sprint(i))
	}
	policy := h.Policy(extra)
	measure := func(k int) {
		for range k {
			i := h.Len() % 40
			h.Measure(fmt.Sprintf("/f%d", i), []byte(fmt.Sprint(i)))
		}
	}
	at := func(cl *client.Client) *attester.Attester {
		return &attester.Attester{TPM: tp, Client: cl, Node: "n", List: h}
	}
	pass := func(a *attester.Attester) *attest.Result {
		t.Helper()
		res, err := a.Round(ctx)
		if err != nil || res.Verdict != attest.VerdictPass || res.State != attest.StatePass {
			t.Fatalf("round: %+v %v", res, err)
		}
		return res
	}
	// staleAt asks replica v for a challenge, checks that it was made
	// from the remembered round, and that evidence for it is refused.
	staleAt := func(v *running, cl *client.Client, round uint64) {
		t.Helper()
		ch, err := cl.Challenge(ctx, "n", &attest.ChallengeRequest{Banks: []string{"sha1", "sha256"}, ListPCRs: []int{imahost.PCR}})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := openToken(v.st.Secret(), ch.Token, v.srv.now()); err != nil || c.Round != round {
			t.Fatalf("challenge of round %+v (%v), want the remembered round %d", c, err, round)
		}
		q, err := tp.Quote(ch.Nonce, ch.Selection)
		if err != nil {
			t.Fatal(err)
		}
		list, _ := h.ReadFrom(ch.Offset)
		_, err = cl.Evidence(ctx, "n", &attest.Evidence{Token: ch.Token, Quote: attest.Quote{Attest: q.Attest, Signature: q.Signature},
			PCRs: attest.PCRValues(q.PCRs), Offset: ch.Offset, List: list})
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 409 || ce.ID != "challenge.used" {
			t.Fatalf("evidence for a stale challenge: %v", err)
		}
	}

	if _, err := cla.AddNode(ctx, &attest.NodeAdd{Node: "n", RuntimePolicy: policy}); err != nil {
		t.Fatal(err)
	}
	if err := at(cla).Enroll(ctx); err != nil {
		t.Fatal(err)
	}
	measure(5)
	remembered := pass(at(cla)).Round // A remembers the node at this round
	measure(5)
	pass(at(clb))
	measure(5)
	pass(at(clb))
	staleAt(va, cla, remembered)
	measure(5)
	pass(at(cla)) // the refused challenge is forgotten: A reads the node again

	// Removed and added again at B, then attested at B up to the round A
	// remembers, with a longer list: A's challenge has the right round and
	// the wrong cursor.
	remembered = pass(at(cla)).Round
	if err := clb.RemoveNode(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := clb.AddNode(ctx, &attest.NodeAdd{Node: "n", RuntimePolicy: policy}); err != nil {
		t.Fatal(err)
	}
	if err := at(clb).Enroll(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		measure(3)
		if pass(at(clb)).Round == remembered {
			break
		}
	}
	staleAt(va, cla, remembered)
	measure(2)
	pass(at(cla))
	n, err := cla.Node(ctx, "n", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range n.History {
		if r.Verdict != attest.VerdictPass {
			t.Fatalf("a round judged %s: %+v", r.Verdict, r)
		}
	}
}
