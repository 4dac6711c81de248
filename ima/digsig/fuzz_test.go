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

// FuzzKeyringAdd: keyring files (DER or PEM certificates and public keys)
// never panic the parser; keys that load are found by the keyids returned.
func FuzzKeyringAdd(f *testing.F) {
	for _, name := range []string{"testdata/keylime/rsa2048pub.pem", "testdata/keylime/secp256k1.pem"} {
		f.Add(readFile(f, name))
	}
	f.Add(readFile(f, signedCapture(f, "x509_ima.der")))
	f.Add(readFile(f, signedCapture(f, "x509_ima.pem")))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var kr Keyring
		ids, err := kr.Add(data)
		if err != nil && len(ids) != kr.Len() {
			t.Fatalf("%d keyids returned with an error, %d keys held", len(ids), kr.Len())
		}
		for _, id := range ids {
			if len(kr.Lookup(id)) == 0 {
				t.Fatalf("keyid %08x returned but not found", id)
			}
		}
	})
}
