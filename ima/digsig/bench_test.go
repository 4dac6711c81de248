package digsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/imago-ima/imago/ima"
)

func BenchmarkVerify(b *testing.B) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte("benchmark"))
	d := ima.Digest{Alg: ima.HashSHA256, Sum: sum[:]}
	for _, bc := range []struct {
		name string
		key  crypto.Signer
	}{{"RSA-2048", rsaKey}, {"P-256", ecKey}} {
		b.Run(bc.name, func(b *testing.B) {
			var kr Keyring
			id, err := kr.AddPublicKey(bc.key.Public())
			if err != nil {
				b.Fatal(err)
			}
			value, err := Sign(bc.key, id, ima.HashSHA256, d.Sum)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := Verify(value, d, &kr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
