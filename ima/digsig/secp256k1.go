package digsig

import (
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Secp256k1PublicKey is a public key on the secp256k1 curve (SEC 2 §2.4.1),
// which Go's crypto/ecdsa and crypto/x509 do not support. The curve
// arithmetic is github.com/decred/dcrd/dcrec/secp256k1, a maintained library
// (Decred's and btcd's); imago holds no curve code of its own.
type Secp256k1PublicKey struct {
	key *secp256k1.PublicKey
}

// Uncompressed returns the X9.62 uncompressed point 0x04 ‖ X ‖ Y.
func (k *Secp256k1PublicKey) Uncompressed() []byte { return k.key.SerializeUncompressed() }

// Equal reports whether x is the same secp256k1 key.
func (k *Secp256k1PublicKey) Equal(x any) bool {
	o, ok := x.(*Secp256k1PublicKey)
	return ok && k.key.IsEqual(o.key)
}

// verify checks an ASN.1 DER ECDSA signature over digest (truncated to the
// curve's 256 bits, as ECDSA prescribes). Both low and high S verify, as in
// OpenSSL and the kernel.
func (k *Secp256k1PublicKey) verify(digest, sig []byte) bool {
	s, err := secpecdsa.ParseDERSignature(sig)
	if err != nil {
		return false
	}
	return s.Verify(digest, k.key)
}

// OIDs of an EC SubjectPublicKeyInfo (RFC 5480 §2.1.1, SEC 2 §A.2).
var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

// parseSecp256k1SPKI returns the key of a DER SubjectPublicKeyInfo whose
// algorithm is id-ecPublicKey with the namedCurve secp256k1, or ok false
// for any other key.
func parseSecp256k1SPKI(der []byte) (*Secp256k1PublicKey, bool, error) {
	var spki struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue `asn1:"optional"`
		}
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil || len(rest) != 0 || !spki.Algorithm.Algorithm.Equal(oidECPublicKey) {
		return nil, false, nil
	}
	var curve asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(spki.Algorithm.Parameters.FullBytes, &curve); err != nil || !curve.Equal(oidSecp256k1) {
		return nil, false, nil
	}
	pub, err := secp256k1.ParsePubKey(spki.PublicKey.Bytes)
	if err != nil {
		return nil, true, fmt.Errorf("digsig: %w: secp256k1 public key: %v", ErrMalformed, err)
	}
	return &Secp256k1PublicKey{key: pub}, true, nil
}

// parseSecp256k1Private returns the public key of a DER SEC 1 ECPrivateKey
// (RFC 5915) or PKCS #8 PrivateKeyInfo (RFC 5208) on secp256k1.
func parseSecp256k1Private(der []byte) (*Secp256k1PublicKey, bool) {
	var p8 struct {
		Version    int
		Algorithm  struct{ Algorithm, Curve asn1.ObjectIdentifier }
		PrivateKey []byte
	}
	if rest, err := asn1.Unmarshal(der, &p8); err == nil && len(rest) == 0 && p8.Algorithm.Algorithm.Equal(oidECPublicKey) {
		if !p8.Algorithm.Curve.Equal(oidSecp256k1) {
			return nil, false
		}
		der = p8.PrivateKey
	}
	var sec1 struct {
		Version    int
		PrivateKey []byte
		Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
		PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
	}
	if rest, err := asn1.Unmarshal(der, &sec1); err != nil || len(rest) != 0 || sec1.Version != 1 {
		return nil, false
	}
	if len(sec1.Curve) > 0 && !sec1.Curve.Equal(oidSecp256k1) {
		return nil, false
	}
	if len(sec1.PrivateKey) != 32 {
		return nil, false
	}
	priv := secp256k1.PrivKeyFromBytes(sec1.PrivateKey)
	return &Secp256k1PublicKey{key: priv.PubKey()}, true
}

// keyIDSecp256k1 is the evmctl and Keylime keyid of a secp256k1 key: the
// last 4 bytes of SHA-1 over the uncompressed point (ima-spec.md §10.3).
func keyIDSecp256k1(k *Secp256k1PublicKey) uint32 {
	sum := sha1.Sum(k.Uncompressed())
	return binary.BigEndian.Uint32(sum[16:])
}

// VerifyASN1 checks an ASN.1 DER ECDSA signature over digest, like
// ecdsa.VerifyASN1 for the NIST curves.
func (k *Secp256k1PublicKey) VerifyASN1(digest, sig []byte) bool { return k.verify(digest, sig) }

// MarshalPKIX returns the DER SubjectPublicKeyInfo of pub, like
// x509.MarshalPKIXPublicKey, and also for secp256k1 keys.
func MarshalPKIX(pub crypto.PublicKey) ([]byte, error) {
	k, ok := pub.(*Secp256k1PublicKey)
	if !ok {
		return x509.MarshalPKIXPublicKey(pub)
	}
	curve, _ := asn1.Marshal(oidSecp256k1)
	return asn1.Marshal(struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}
		PublicKey asn1.BitString
	}{
		Algorithm: struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}{oidECPublicKey, asn1.RawValue{FullBytes: curve}},
		PublicKey: asn1.BitString{Bytes: k.Uncompressed(), BitLength: 8 * len(k.Uncompressed())},
	})
}
