package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

func ngEntry(t *testing.T, path string, b byte) *ima.Entry {
	t.Helper()
	return mustEntry(t, ima.TemplateIMANG, 10, ima.DigestNG(ima.HashSHA256, bytes.Repeat([]byte{b}, 32)), ima.NameNG(path))
}

// quoteAfter returns the sha1 and sha256 PCR 10 after the entries.
func quoteAfter(es []*ima.Entry) pcr.Set {
	v1, v2 := make([]byte, 20), make([]byte, 32)
	for _, e := range es {
		v1 = pcr.Extend(pcr.SHA1, v1, e.TemplateDigest(pcr.SHA1))
		v2 = pcr.Extend(pcr.SHA256, v2, e.TemplateDigest(pcr.SHA256))
	}
	return pcr.Set{pcr.SHA1: {10: v1}, pcr.SHA256: {10: v2}}
}

func roundTrip(t *testing.T, s *State) *State {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	return s2
}

// A list read after the quote runs ahead: the State stops at the quote's
// entry, the rest is read again next round; a quote that does not catch up
// with what the previous round read past it fails (Keylime's
// quote_progress).
func TestRoundsListAhead(t *testing.T) {
	var es []*ima.Entry
	for i := range 6 {
		es = append(es, ngEntry(t, "/f"+string(rune('a'+i)), byte(i)))
	}
	p, _ := NewPolicy(Options{})
	rep, st, err := p.Verify(nil, Round{Entries: Entries(es[:5]), Quoted: quoteAfter(es[:3])})
	if err != nil || !rep.Pass() || rep.Read != 5 || rep.Consumed != 3 || st.Next != 3 || st.Lag != 2 {
		t.Fatalf("round 1: %v %+v %+v", err, rep, st)
	}
	if len(rep.PCRs) != 2 || rep.PCRs[0].Entry != 3 || !rep.PCRs[1].Matched {
		t.Errorf("PCR results %+v", rep.PCRs)
	}
	st = roundTrip(t, st)
	// The quote has not moved: it covers none of the two entries read past
	// it last time.
	rep2, st2, err := p.Verify(st, Round{Entries: Entries(es[3:6]), Quoted: quoteAfter(es[:3])})
	if err != nil || rep2.Pass() || rep2.Failures[len(rep2.Failures)-1].ID != IDQuoteProgress {
		t.Fatalf("stalled quote: %v %+v", err, rep2.Failures)
	}
	_ = st2
	// The quote caught up.
	rep3, st3, err := p.Verify(st, Round{Entries: Entries(es[3:6]), Quoted: quoteAfter(es)})
	if err != nil || !rep3.Pass() || rep3.Consumed != 3 || st3.Next != 6 || st3.Lag != 0 {
		t.Fatalf("round 2: %v %+v %+v", err, rep3, st3)
	}
}

// One bank that does not match is a PCR mismatch even when another bank
// matches; the State does not advance and each bank is reported.
func TestRoundsBankMismatch(t *testing.T) {
	es := []*ima.Entry{ngEntry(t, "/a", 1), ngEntry(t, "/b", 2)}
	q := quoteAfter(es)
	q[pcr.SHA1][10] = bytes.Repeat([]byte{7}, 20)
	p, _ := NewPolicy(Options{})
	prev := &State{}
	rep, st, err := p.Verify(prev, Round{Entries: Entries(es), Quoted: q})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass() || rep.Matched || rep.Failures[0].ID != IDPCRMismatch || st.Next != 0 || len(st.PCRs) != 0 {
		t.Fatalf("%+v %+v", rep, st)
	}
	for _, r := range rep.PCRs {
		if (r.Bank == "sha256") != r.Matched {
			t.Errorf("%+v", r)
		}
	}
	// A quote without the list's PCR cannot be checked.
	if _, _, err := p.Verify(nil, Round{Entries: Entries(es), Quoted: pcr.Set{pcr.SHA1: {0: make([]byte, 20)}}}); err == nil {
		t.Error("a quote without PCR 10: no error")
	}
}

// A key loaded onto .ima in one round verifies a signature in the next,
// through the State's JSON; a failure stays in the State.
func TestRoundsLearnedKeyAndStickyFailure(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "k"}, NotBefore: time.Unix(1e9, 0),
		NotAfter: time.Unix(3e9, 0), SubjectKeyId: []byte{0xde, 0xad, 0xbe, 0xef}}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certSum := sha256.Sum256(cert)
	keyring := mustEntry(t, ima.TemplateIMABuf, 10, ima.DigestNG(ima.HashSHA256, certSum[:]), ima.NameNG(".ima"), ima.Buf(cert))
	fileSum := sha256.Sum256([]byte("file"))
	sig, err := digsig.Sign(key, 0xdeadbeef, ima.HashSHA256, fileSum[:])
	if err != nil {
		t.Fatal(err)
	}
	signed := mustEntry(t, ima.TemplateIMASig, 10, ima.DigestNG(ima.HashSHA256, fileSum[:]), ima.NameNG("/signed"), ima.Sig(sig))
	unknown := ngEntry(t, "/unknown", 9)
	pol := `{"meta": {"version": 1}, "digests": {}, "keyrings": {".ima": ["` + hex.EncodeToString(certSum[:]) + `"]}}`
	rp, err := runtimepolicy.Compile(strings.NewReader(pol), runtimepolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewPolicy(Options{RuntimePolicy: rp})
	rep, st, err := p.Verify(nil, Round{Entries: Entries([]*ima.Entry{keyring})})
	if err != nil || !rep.Pass() || len(st.Keys) != 1 || st.Keys[0].KeyID != 0xdeadbeef || st.Keys[0].Keyring != ".ima" {
		t.Fatalf("round 1: %v %+v %+v", err, rep.Failures, st)
	}
	st = roundTrip(t, st)
	rep, st, err = p.Verify(st, Round{Entries: Entries([]*ima.Entry{signed, unknown})})
	if err != nil || rep.FailedEntries != 1 || rep.Failures[0].Entry != 2 || rep.Failures[0].ID != IDNotInAllowlist {
		t.Fatalf("round 2: %v %+v", err, rep.Failures)
	}
	if st.Failed != 1 || st.FirstFailed != 2 {
		t.Errorf("state %+v", st)
	}
	// Round 3 finds nothing new, and the list still fails.
	rep, _, err = p.Verify(roundTrip(t, st), Round{Entries: Entries([]*ima.Entry{signed})})
	if err != nil || rep.FailureCount != 0 || rep.Pass() || rep.PriorFailed != 1 {
		t.Fatalf("round 3: %v %+v", err, rep)
	}
	// Without the keyring entry first, the signature has no key and the
	// path is not in the policy.
	rep, _, _ = p.Verify(nil, Round{Entries: Entries([]*ima.Entry{signed})})
	if rep.Pass() {
		t.Error("a signature by an unknown key passed")
	}
}
