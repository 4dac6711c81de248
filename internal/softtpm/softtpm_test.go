package softtpm

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// TestCredentialAndQuote: go-tpm's CreateCredential (the verifier's side,
// checked against real TPMs in package attester) made for this TPM's EK and
// AK name is recovered; for another name it is refused; quotes verify with
// package quote like a TPM's.
func TestCredentialAndQuote(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	tp, err := New(ca, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := tp.Endorsement()
	if _, err := enroll.NewRoots([]*x509.Certificate{ca.Cert}).CheckEKCertificate(&ek.Public, ek.Certificate, nil, x509.VerifyOptions{CurrentTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ak, _ := tp.AKPublic()
	if err := enroll.CheckAK(ak); err != nil {
		t.Fatal(err)
	}
	name, _ := enroll.Name(ak)
	secret := []byte("sixteen byte key")
	c, err := enroll.NewCredential(rand.Reader, &ek.Public, name, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tp.Activate(c)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("activate: %x, %v", got, err)
	}
	other, _ := New(nil, "")
	oak, _ := other.AKPublic()
	oname, _ := enroll.Name(oak)
	c2, _ := enroll.NewCredential(rand.Reader, &ek.Public, oname, secret)
	if _, err := tp.Activate(c2); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("credential for another AK: %v, want ErrIntegrity", err)
	}

	tp.Extend(10, map[pcr.Bank][]byte{pcr.SHA1: make([]byte, 20), pcr.SHA256: make([]byte, 32)})
	sel := quote.NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 10})
	q, err := tp.Quote([]byte("nonce"), sel)
	if err != nil {
		t.Fatal(err)
	}
	p, err := quote.Parse(q.Attest, q.Signature)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{p.CheckSignature(ak), p.CheckNonce([]byte("nonce")), p.CheckSelection(sel), p.CheckPCRs(q.PCRs)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.CheckSignature(oak); !errors.Is(err, quote.ErrSignature) {
		t.Fatalf("another AK's key verified: %v", err)
	}
	q2, _ := tp.Quote([]byte("nonce"), sel)
	p2, _ := quote.Parse(q2.Attest, q2.Signature)
	if ch, err := quote.CheckClock(p.Clock, p2.Clock); err != nil || ch != quote.Same {
		t.Fatalf("clock: %v %v", ch, err)
	}
	if _, err := quote.CheckClock(p2.Clock, p.Clock); err == nil {
		t.Fatal("an older quote passed the clock check")
	}
	tp.Reset()
	q3, _ := tp.Quote([]byte("nonce"), sel)
	p3, _ := quote.Parse(q3.Attest, q3.Signature)
	if ch, err := quote.CheckClock(p2.Clock, p3.Clock); err != nil || ch != quote.Reset {
		t.Fatalf("after reset: %v %v", ch, err)
	}
}

// TestEncodingIsGoTPMs: the hand encoder gives go-tpm's bytes.
func TestEncodingIsGoTPMs(t *testing.T) {
	sel := quote.NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 5, 10, 23})
	clock := quote.ClockInfo{Clock: 1 << 40, ResetCount: 7, RestartCount: 2, Safe: true}
	a := appendAttest(nil, []byte("name"), []byte("nonce"), clock, sel, bytes.Repeat([]byte{9}, 32))
	if !bytes.Equal(a, marshalAttest([]byte("name"), []byte("nonce"), clock, sel, bytes.Repeat([]byte{9}, 32))) {
		t.Fatal("attest differs from go-tpm's")
	}
	r, s := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if !bytes.Equal(appendECDSASig(nil, r, s), marshalSig(r, s)) {
		t.Fatal("signature differs from go-tpm's")
	}
}
