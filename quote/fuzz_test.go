package quote

import (
	"bytes"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// FuzzParse: any bytes; no panic, nil on error, and what parses has no
// bytes after its structure and survives every check.
func FuzzParse(f *testing.F) {
	fx := readFixture(f)
	f.Add(fx.attest, fx.sig)
	f.Add(fx.attest[:40], fx.sig[:10])
	f.Fuzz(func(t *testing.T, attest, sig []byte) {
		q, err := Parse(attest, sig)
		if err != nil {
			if q != nil {
				t.Fatal("value with error")
			}
			return
		}
		if !bytes.Equal(q.Attest, attest) {
			t.Fatal("attest bytes changed")
		}
		a, _ := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
		if len(tpm2.Marshal(*a)) != len(attest) {
			t.Fatal("bytes after the structure accepted")
		}
		q.CheckSignature(fx.ak)
		q.CheckNonce(fx.nonce)
		q.CheckPCRs(fx.pcrs)
		q.CheckSelection(q.Selection)
	})
}

// FuzzParsePublic: a key's public area from the attester.
func FuzzParsePublic(f *testing.F) {
	fx := readFixture(f)
	f.Add(tpm2.Marshal(*fx.ak))
	f.Add(tpm2.Marshal(tpm2.RSAEKTemplate))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublic(data)
		if err != nil {
			if p != nil {
				t.Fatal("value with error")
			}
			return
		}
		if !bytes.Equal(tpm2.Marshal(*p), data) {
			t.Fatal("does not re-encode")
		}
		PublicKey(p)
	})
}
