package quote

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
)

type fixture struct {
	attest, sig, nonce []byte
	ak                 *tpm2.TPMTPublic
	pcrs               pcr.Set
}

func readFixture(t testing.TB) fixture {
	t.Helper()
	dir := filepath.Join("testdata", "swtpm-quote")
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f := fixture{attest: read("attest.bin"), sig: read("signature.bin"), nonce: read("nonce.bin")}
	ak, err := ParsePublic(read("ak.pub"))
	if err != nil {
		t.Fatal(err)
	}
	f.ak = ak
	if f.pcrs, err = pcr.ParseJSON(read("pcrs.json")); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSwtpmQuote checks a real swtpm quote: signature with its AK, nonce,
// selection, and PCR digest against tpm2_pcrread's values.
func TestSwtpmQuote(t *testing.T) {
	f := readFixture(t)
	q, err := Parse(f.attest, f.sig)
	if err != nil {
		t.Fatal(err)
	}
	want := NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	for name, err := range map[string]error{
		"signature": q.CheckSignature(f.ak), "nonce": q.CheckNonce(f.nonce),
		"selection": q.CheckSelection(want), "pcrs": q.CheckPCRs(f.pcrs),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An AK of the endorsement hierarchy sees the real counters (swtpm_setup
	// left 2 resets); an owner-hierarchy key would see them obfuscated.
	if q.Clock.ResetCount != 2 || q.Clock.RestartCount != 0 || !q.Clock.Safe {
		t.Errorf("clock %+v", q.Clock)
	}
	// Every single-byte change of the attestation is caught by the
	// signature check or by the parser.
	for i := range f.attest {
		b := append([]byte(nil), f.attest...)
		b[i] ^= 0x01
		q2, err := Parse(b, f.sig)
		if err == nil && q2.CheckSignature(f.ak) == nil {
			t.Fatalf("byte %d changed and still accepted", i)
		}
	}
	bad := make(pcr.Set)
	bad.Merge(f.pcrs)
	v, _ := bad.Get(pcr.SHA1, 3)
	v[19] ^= 1
	if err := q.CheckPCRs(bad); !errors.Is(err, ErrPCRDigest) {
		t.Errorf("changed PCR: %v", err)
	}
	delete(bad[pcr.SHA256], 10)
	var me *MissingPCRError
	if err := q.CheckPCRs(bad); !errors.As(err, &me) {
		t.Errorf("missing PCR: %v", err)
	}
	if err := q.CheckNonce([]byte("other")); !errors.Is(err, ErrNonce) {
		t.Errorf("other nonce: %v", err)
	}
	if err := q.CheckSelection(NewSelection([]pcr.Bank{pcr.SHA256}, []int{10})); !errors.Is(err, ErrSelection) {
		t.Errorf("other selection: %v", err)
	}
}

// TestSwtpmQuoteCheckquote: tpm2-tools' tpm2_checkquote, an independent
// implementation, verifies the same fixture (signature and nonce) and
// refuses a changed nonce.
func TestSwtpmQuoteCheckquote(t *testing.T) {
	tool := testenv.Tool(t, "tpm2_checkquote")
	f := readFixture(t)
	k, err := tpm2.Pub(*f.ak)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(k)
	dir := t.TempDir()
	akPEM := filepath.Join(dir, "ak.pem")
	os.WriteFile(akPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	run := func(nonce []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, tool, "-u", akPEM, "-m", filepath.Join("testdata", "swtpm-quote", "attest.bin"),
			"-s", filepath.Join("testdata", "swtpm-quote", "signature.bin"), "-q", hex.EncodeToString(nonce), "-g", "sha256").CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	if err := run(f.nonce); err != nil {
		t.Fatalf("tpm2_checkquote refuses the fixture: %v", err)
	}
	if err := run([]byte("another nonce")); err == nil {
		t.Fatal("tpm2_checkquote accepted another nonce")
	}
}

func TestCheckClock(t *testing.T) {
	base := ClockInfo{Clock: 1000, ResetCount: 3, RestartCount: 1}
	for _, tc := range []struct {
		cur  ClockInfo
		want Change
		err  bool
	}{
		{ClockInfo{Clock: 1001, ResetCount: 3, RestartCount: 1}, Same, false},
		{ClockInfo{Clock: 1000, ResetCount: 3, RestartCount: 1}, 0, true},
		{ClockInfo{Clock: 999, ResetCount: 3, RestartCount: 1}, 0, true},
		{ClockInfo{Clock: 5, ResetCount: 3, RestartCount: 2}, Restart, false},
		{ClockInfo{Clock: 5000, ResetCount: 3, RestartCount: 0}, 0, true},
		{ClockInfo{Clock: 5, ResetCount: 4}, Reset, false},
		{ClockInfo{Clock: 5000, ResetCount: 2, RestartCount: 9}, 0, true},
	} {
		got, err := CheckClock(base, tc.cur)
		var ce *ClockError
		if (err != nil) != tc.err || (err != nil && !errors.As(err, &ce)) || (err == nil && got != tc.want) {
			t.Errorf("%+v: %v %v", tc.cur, got, err)
		}
	}
}
