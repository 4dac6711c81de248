package attester

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

func openDevice(t *testing.T, s *tpmtest.Swtpm) (*tpm.TPM, *Device) {
	t.Helper()
	tp, err := tpm.Open(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDevice(tp)
	t.Cleanup(func() { d.Close(); tp.Close() })
	return tp, d
}

// TestDeviceEnrollAndQuote runs the whole TPM side against swtpm with a
// real EK certificate chain from a private swtpm-localca: the EK
// certificate chains to the CA, the credential made in software for the
// AK's name is recovered by the TPM, and the quote verifies with the AK
// over PCR values tpm2_pcrread reads independently.
func TestDeviceEnrollAndQuote(t *testing.T) {
	ca := tpmtest.NewLocalCA(t)
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}, EK: ca})
	s.Start()
	_, d := openDevice(t, s)

	ek, err := d.Endorsement()
	if err != nil {
		t.Fatal(err)
	}
	if ek.CertIndex != 0x01c00002 || len(ek.Certificate) == 0 {
		t.Fatalf("EK certificate from %#x (%d bytes), want the RSA one at 0x01c00002", uint32(ek.CertIndex), len(ek.Certificate))
	}
	roots := enroll.NewRoots(ca.Certificates(t))
	if _, err := roots.CheckEKCertificate(&ek.Public, ek.Certificate, ek.Chain, x509.VerifyOptions{CurrentTime: time.Now()}); err != nil {
		t.Fatalf("EK certificate does not verify: %v", err)
	}
	// An unknown CA does not verify it.
	other := tpmtest.NewLocalCA(t)
	tpmtest.New(t, tpmtest.Options{EK: other}) // manufactures other's root
	if _, err := enroll.NewRoots(other.Certificates(t)).CheckEKCertificate(&ek.Public, ek.Certificate, nil, x509.VerifyOptions{}); err == nil {
		t.Fatal("EK certificate verified against another CA")
	}

	ak, err := d.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	if err := enroll.CheckAK(ak); err != nil {
		t.Fatal(err)
	}
	name, err := enroll.Name(ak)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	cred, err := enroll.NewCredential(rand.Reader, &ek.Public, name, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Activate(cred)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("activated %x, want %x", got, secret)
	}
	// A credential bound to another key's name does not activate.
	wrong := bytes.Clone(name)
	wrong[len(wrong)-1] ^= 1
	cred2, err := enroll.NewCredential(rand.Reader, &ek.Public, wrong, secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Activate(cred2); err == nil {
		t.Fatal("a credential for another name activated")
	}

	// The AK is the same after the TPM restarts (a primary key).
	s.Stop()
	s.Start()
	_, d2 := openDevice(t, s)
	ak2, err := d2.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tpm2.Marshal(*ak), tpm2.Marshal(*ak2)) {
		t.Fatal("AK changed across a TPM restart")
	}

	nonce := []byte("a fresh nonce of 32 bytes, exact")
	sel := quote.NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	s.PCRExtend(t, "10:sha1=0000000000000000000000000000000000000001,sha256=0000000000000000000000000000000000000000000000000000000000000001")
	q, err := d2.Quote(nonce, sel)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := quote.Parse(q.Attest, q.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.CheckSignature(ak); err != nil {
		t.Fatal(err)
	}
	if err := parsed.CheckNonce(nonce); err != nil {
		t.Fatal(err)
	}
	if err := parsed.CheckSelection(sel); err != nil {
		t.Fatal(err)
	}
	oracle := s.PCRRead(t, "sha1:0,1,2,3,4,5,6,7,8,9,10+sha256:0,1,2,3,4,5,6,7,8,9,10")
	if err := parsed.CheckPCRs(oracle); err != nil {
		t.Fatalf("quote does not cover tpm2_pcrread's values: %v", err)
	}
	if parsed.Clock.ResetCount == 0 && parsed.Clock.RestartCount == 0 && parsed.Clock.Clock == 0 {
		t.Fatal("clock info empty")
	}
	// Another nonce and a changed PCR are caught.
	if err := parsed.CheckNonce([]byte("another nonce")); err == nil {
		t.Fatal("wrong nonce accepted")
	}
	bad := make(pcr.Set)
	bad.Merge(oracle)
	v, _ := bad.Get(pcr.SHA256, 10)
	v[0] ^= 1
	if err := parsed.CheckPCRs(bad); err == nil {
		t.Fatal("changed PCR accepted")
	}
}
