package digsig

import (
	"bytes"
	"testing"

	"github.com/imago-ima/imago/ima"
)

// FuzzParseValue checks that ParseValue never panics, returns a zero Value
// with an error, re-encodes what it accepts to the same bytes, and that
// HashAlgOf, Verify and Appraise survive any value.
func FuzzParseValue(f *testing.F) {
	f.Add(unhex(f, evmctlHashSHA256))
	f.Add(unhex(f, evmctlHashSHA1))
	f.Add(unhex(f, evmctlSigEC))
	f.Add([]byte{3, 3, 4, 1, 2, 3, 4, 0, 1, 0})
	var kr Keyring
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseValue(b)
		if err != nil {
			if v.Type != 0 || v.Digest.Sum != nil || v.Sig.Signature != nil {
				t.Fatalf("partial value with error %v", err)
			}
		} else if out := v.Append(nil); !bytes.Equal(out, b) {
			t.Fatalf("Append gives %x, want %x", out, b)
		}
		alg := HashAlgOf(b, ima.HashSHA256)
		d := ima.Digest{Alg: alg, Sum: make([]byte, alg.Size())}
		Verify(b, d, &kr)
		Appraise(b, d, &kr, Requirements{Signature: len(b)%2 == 0, AllowedAlgos: []ima.HashAlg{ima.HashSHA256}})
	})
}
