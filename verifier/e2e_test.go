package verifier

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/ear"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/imahost"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
	"github.com/imago-ima/imago/verifier/client"
)

// recordingList records the offsets the verifier asks for.
type recordingList struct {
	attester.List
	mu      sync.Mutex
	offsets []uint64
	sent    []int // bytes sent per round
}

func (l *recordingList) ReadFrom(i uint64) ([]byte, error) {
	b, err := l.List.ReadFrom(i)
	l.mu.Lock()
	l.offsets = append(l.offsets, i)
	l.sent = append(l.sent, len(b))
	l.mu.Unlock()
	return b, err
}

func (l *recordingList) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.offsets[len(l.offsets)-1]
}

// host is an attested machine: swtpm with an EK certificate, its TPM
// opened through package tpm, and an IMA list extended into it.
type host struct {
	sw   *tpmtest.Swtpm
	tp   *tpm.TPM
	dev  *attester.Device
	ima  *imahost.Host
	list *recordingList
}

func newHost(t *testing.T, ca *tpmtest.LocalCA) *host {
	t.Helper()
	sw := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}, EK: ca})
	sw.Start()
	h := &host{sw: sw}
	h.open(t)
	return h
}

// open (re)opens the TPM and starts a new boot's list.
func (h *host) open(t *testing.T) {
	t.Helper()
	tp, err := tpm.Open(h.sw.URI)
	if err != nil {
		t.Fatal(err)
	}
	h.tp, h.dev = tp, attester.NewDevice(tp)
	t.Cleanup(func() { h.dev.Close(); tp.Close() })
	boot, err := tp.ReadPCRs([]pcr.Bank{pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if err != nil {
		t.Fatal(err)
	}
	h.ima = imahost.New([]pcr.Bank{pcr.SHA1, pcr.SHA256}, tp.Extend)
	if err := h.ima.Boot(boot); err != nil {
		t.Fatal(err)
	}
	h.list = &recordingList{List: h.ima}
}

func (h *host) measure(t *testing.T, path, content string) {
	t.Helper()
	if _, err := h.ima.Measure(path, []byte(content)); err != nil {
		t.Fatal(err)
	}
}

func (h *host) attester(cl *client.Client, node string) *attester.Attester {
	return &attester.Attester{TPM: h.dev, Client: cl, Node: node, List: h.list}
}

func wantError(t *testing.T, err error, status int, id string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != status || ce.ID != id {
		t.Fatalf("got %v, want HTTP %d %s", err, status, id)
	}
}

func wantResult(t *testing.T, res *attest.Result, err error, verdict, state string, ids ...string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Failures {
		got = append(got, f.ID)
	}
	if res.Verdict != verdict || res.State != state || !slices.Equal(got, ids) {
		t.Fatalf("verdict %s state %s failures %+v; want %s %s %v", res.Verdict, res.State, res.Failures, verdict, state, ids)
	}
}

func nodeState(t *testing.T, cl *client.Client, node string) *attest.NodeView {
	t.Helper()
	v, err := cl.Node(context.Background(), node, 100)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRemoteAttestation runs enrollment and attestation rounds between a
// real swtpm with a real EK certificate chain, the attester and the
// verifier service, on SQLite and on PostgreSQL, through every case the
// issue lists.
func TestRemoteAttestation(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		ca := tpmtest.NewLocalCA(t)
		h := newHost(t, ca)
		h.measure(t, "/usr/bin/bash", "bash v1")
		h.measure(t, "/usr/lib/libc.so.6", "libc")
		roots := enroll.NewRoots(ca.Certificates(t))
		earKey := testEARKey(t)
		v := startVerifier(t, url, roots, func(c *Config) { c.EAR = earKey })
		cl, err := client.New(v.URL, client.Options{CA: v.CA})
		if err != nil {
			t.Fatal(err)
		}
		policy := h.ima.Policy(map[string]string{"/usr/bin/later": sha256hex("later")})
		if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: "n1", RuntimePolicy: policy}); err != nil {
			t.Fatal(err)
		}
		if s := nodeState(t, cl, "n1"); s.State != attest.StateEnrolling || s.Enrolled {
			t.Fatalf("new node: %+v", s)
		}
		a := h.attester(cl, "n1")

		// Enroll and pass.
		if err := a.Enroll(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := a.Round(ctx)
		wantResult(t, res, err, attest.VerdictPass, attest.StatePass)
		if res.Entries != uint64(h.ima.Len()) || h.list.last() != 0 {
			t.Fatalf("first round: %d entries verified from offset %d, list has %d", res.Entries, h.list.last(), h.ima.Len())
		}
		claims, err := ear.Verify(res.EAR, earKey.JWKS())
		if err != nil || claims.Submods[ear.Submodule].Status != ear.StatusAffirming {
			t.Fatalf("EAR: %+v %v", claims, err)
		}

		// The verifier restarts between rounds: the next round sends only
		// the new entries.
		v.stop()
		v = startVerifier(t, url, roots, nil)
		cl, _ = client.New(v.URL, client.Options{CA: v.CA})
		a.Client = cl
		before := h.ima.Len()
		h.measure(t, "/usr/bin/later", "later")
		res, err = a.Round(ctx)
		wantResult(t, res, err, attest.VerdictPass, attest.StatePass)
		if h.list.last() != uint64(before) || res.Entries != uint64(before+1) {
			t.Fatalf("after a verifier restart: asked from %d (want %d), verified %d", h.list.last(), before, res.Entries)
		}

		// A replayed round (old evidence, used challenge) is refused and
		// changes nothing.
		ch, ev := manualEvidence(t, h, cl, "n1")
		res, err = cl.Evidence(ctx, "n1", ev)
		wantResult(t, res, err, attest.VerdictPass, attest.StatePass)
		_, err = cl.Evidence(ctx, "n1", ev)
		wantError(t, err, 409, "challenge.used")
		_ = ch

		// A quote made over another nonce: fail quote.nonce; not the
		// node's word, so the next good round passes again.
		ch, ev = manualEvidence(t, h, cl, "n1")
		q, err := h.dev.Quote([]byte("an old nonce"), ch.Selection)
		if err != nil {
			t.Fatal(err)
		}
		ev.Quote = attest.Quote{Attest: q.Attest, Signature: q.Signature}
		res, err = cl.Evidence(ctx, "n1", ev)
		wantResult(t, res, err, attest.VerdictFail, attest.StateFail, "quote.nonce")
		res, err = a.Round(ctx)
		wantResult(t, res, err, attest.VerdictPass, attest.StatePass)

		// Evidence signed by another TPM's AK: fail quote.signature.
		other := newHost(t, ca)
		ch, ev = manualEvidence(t, h, cl, "n1")
		q, err = other.dev.Quote(ch.Nonce, ch.Selection)
		if err != nil {
			t.Fatal(err)
		}
		ev.Quote, ev.PCRs = attest.Quote{Attest: q.Attest, Signature: q.Signature}, attest.PCRValues(q.PCRs)
		res, err = cl.Evidence(ctx, "n1", ev)
		wantResult(t, res, err, attest.VerdictFail, attest.StateFail, "quote.signature")
		res, err = a.Round(ctx)
		wantResult(t, res, err, attest.VerdictPass, attest.StatePass)

		// That other TPM cannot take over the node, nor enrol the first
		// TPM's EK under another name.
		if err := other.attester(cl, "n1").Enroll(ctx); err == nil {
			t.Fatal("another TPM enrolled as n1")
		} else {
			wantError(t, errors.Unwrap(err), 409, "enroll.ek_changed")
		}
		if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: "n2", RuntimePolicy: policy}); err != nil {
			t.Fatal(err)
		}
		err = h.attester(cl, "n2").Enroll(ctx)
		wantError(t, errors.Unwrap(err), 409, "enroll.ek_in_use")

		// A TPM whose EK certificate comes from an unknown CA is refused.
		stranger := newHost(t, tpmtest.NewLocalCA(t))
		err = stranger.attester(cl, "n2").Enroll(ctx)
		wantError(t, errors.Unwrap(err), 403, "enroll.ek_certificate")
		if s := nodeState(t, cl, "n2"); s.Enrolled || s.State != attest.StateEnrolling {
			t.Fatalf("n2 after refused enrollments: %+v", s)
		}

		// A tampered list entry: the list no longer replays to the quote.
		ch, ev = manualEvidence(t, h, cl, "n1")
		if len(ev.List) != 0 {
			t.Fatal("no new entries expected")
		}
		h.measure(t, "/usr/bin/bash", "bash v1")
		ch, ev = manualEvidence(t, h, cl, "n1")
		i := bytes.Index(ev.List, []byte("/usr/bin/bash"))
		if i < 0 {
			t.Fatal("entry not in the evidence")
		}
		ev.List[i+5] = 'X' // /usr/Xin/bash
		res, err = cl.Evidence(ctx, "n1", ev)
		wantResult(t, res, err, attest.VerdictFail, attest.StateFail, "ima.validation.ima_hash", "ima.pcr_mismatch")
		// The node's own TPM vouched for that failure: it stays.
		res, err = a.Round(ctx)
		if err != nil || res.Verdict != attest.VerdictPass || res.State != attest.StateFail {
			t.Fatalf("after a tampered list, an honest round: %+v %v (want verdict pass, state fail)", res, err)
		}

		// A reboot (swtpm restarted: PCRs reset, resetCount up) starts
		// the node over, detected from the signed counters.
		h.dev.Close()
		h.tp.Close()
		h.sw.Stop()
		h.sw.Start()
		h.open(t)
		h.measure(t, "/usr/bin/bash", "bash v1")
		a = h.attester(cl, "n1")
		res, err = a.Round(ctx)
		wantResult(t, res, err, attest.VerdictPass, attest.StatePass)
		if h.list.last() != 0 || res.Entries != uint64(h.ima.Len()) {
			t.Fatalf("after a reboot: asked from %d, verified %d of %d", h.list.last(), res.Entries, h.ima.Len())
		}
		hist := nodeState(t, cl, "n1").History
		if len(hist) < 2 || hist[1].Verdict != attest.VerdictRestart {
			t.Fatalf("history after a reboot: %+v", hist)
		}

		// A file outside the policy: fail naming it.
		h.measure(t, "/tmp/evil", "evil")
		res, err = a.Round(ctx)
		if err != nil || res.Verdict != attest.VerdictFail || len(res.Failures) != 1 || res.Failures[0].Path != "/tmp/evil" ||
			res.Failures[0].Entry != int64(h.ima.Len()-1) || res.Failures[0].ID != "ima.validation.ima-ng.not_in_allowlist" {
			t.Fatalf("file outside the policy: %+v %v", res, err)
		}
		s := nodeState(t, cl, "n1")
		if s.State != attest.StateFail || len(s.Failures) != 1 || s.Failures[0].Path != "/tmp/evil" {
			t.Fatalf("node show after the failure: %+v", s)
		}

		// A swtpm with fresh state (a new TPM) under the same name is
		// another EK: refused.
		fresh := newHost(t, ca)
		err = fresh.attester(cl, "n1").Enroll(ctx)
		wantError(t, errors.Unwrap(err), 409, "enroll.ek_changed")
	})
}

// manualEvidence builds a round's evidence by hand (for the attacks).
func manualEvidence(t *testing.T, h *host, cl *client.Client, node string) (*attest.Challenge, *attest.Evidence) {
	t.Helper()
	ch, err := cl.Challenge(context.Background(), node, &attest.ChallengeRequest{Banks: []string{"sha1", "sha256"}, ListPCRs: []int{10}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := h.dev.Quote(ch.Nonce, ch.Selection)
	if err != nil {
		t.Fatal(err)
	}
	list, err := h.list.ReadFrom(ch.Offset)
	if err != nil {
		t.Fatal(err)
	}
	return ch, &attest.Evidence{Token: ch.Token, Quote: attest.Quote{Attest: q.Attest, Signature: q.Signature}, PCRs: attest.PCRValues(q.PCRs), Offset: ch.Offset, List: list}
}
