package digsig

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrNotKey reports data that holds no certificate or key at all (as
// opposed to a key of a type that cannot be used, ErrUnsupported).
var ErrNotKey = errors.New("not a certificate or key")

// MaxKeyLen bounds the key or certificate data ParseKey reads.
const MaxKeyLen = 1 << 20

// parsePKIX parses a DER SubjectPublicKeyInfo: what crypto/x509 reads, and
// secp256k1 keys.
func parsePKIX(der []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err == nil {
		return pub, nil
	}
	if k, ok, kerr := parseSecp256k1SPKI(der); ok {
		if kerr != nil {
			return nil, kerr
		}
		return k, nil
	}
	return nil, err
}

// ParseKey reads one verification key the way Keylime reads a key file or
// an ima-buf keyring entry (file_signatures.get_pubkey): the data is tried
// as a DER certificate, a PEM certificate, a DER public key, a PEM public
// key, a DER private key and a PEM private key, in that order, and the
// first that parses gives the key. Its KeyID is the kernel's and Keylime's:
// the last 4 bytes of a certificate's SubjectKeyIdentifier, else of SHA-1
// over the public key (PKCS #1 RSAPublicKey or the uncompressed EC point;
// ima-spec.md §10.3). It returns an error wrapping ErrNotKey when nothing
// parses, and ErrUnsupported for a key that is not RSA, ECDSA or
// secp256k1 (Keylime's "invalid_key").
func ParseKey(data []byte) (Key, error) {
	if len(data) > MaxKeyLen {
		return Key{}, fmt.Errorf("digsig: %w: key data of %d bytes exceeds %d", ErrTooLarge, len(data), MaxKeyLen)
	}
	var pemBlocks []*pem.Block
	for rest := data; ; {
		b, r := pem.Decode(rest)
		if b == nil {
			break
		}
		pemBlocks = append(pemBlocks, b)
		rest = r
	}
	tryCert := func(der []byte) (Key, bool, error) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return Key{}, false, nil
		}
		if err := checkKeyType(c.PublicKey); err != nil {
			return Key{}, true, err
		}
		id, err := KeyIDFromCertificate(c)
		return Key{KeyID: id, Public: c.PublicKey, Cert: c}, true, err
	}
	tryPub := func(der []byte) (Key, bool, error) {
		pub, err := parsePKIX(der)
		if err != nil {
			if p1, err1 := x509.ParsePKCS1PublicKey(der); err1 == nil {
				pub, err = p1, nil
			} else {
				return Key{}, false, nil
			}
		}
		return bareKey(pub)
	}
	tryPriv := func(der []byte) (Key, bool, error) {
		var priv any
		var err error
		if priv, err = x509.ParsePKCS8PrivateKey(der); err != nil {
			if priv, err = x509.ParseECPrivateKey(der); err != nil {
				if priv, err = x509.ParsePKCS1PrivateKey(der); err != nil {
					if k, ok := parseSecp256k1Private(der); ok {
						return bareKey(k)
					}
					return Key{}, false, nil
				}
			}
		}
		s, ok := priv.(crypto.Signer)
		if !ok {
			return Key{}, true, fmt.Errorf("digsig: %w: %T private key", ErrUnsupported, priv)
		}
		return bareKey(s.Public())
	}
	steps := []struct {
		pem   bool
		try   func([]byte) (Key, bool, error)
		types []string
	}{
		{false, tryCert, nil},
		{true, tryCert, []string{"CERTIFICATE"}},
		{false, tryPub, nil},
		{true, tryPub, []string{"PUBLIC KEY", "RSA PUBLIC KEY"}},
		{false, tryPriv, nil},
		{true, tryPriv, []string{"PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"}},
	}
	for _, st := range steps {
		if !st.pem {
			if k, ok, err := st.try(data); ok {
				return k, err
			}
			continue
		}
		for _, b := range pemBlocks {
			for _, t := range st.types {
				if b.Type == t {
					if k, ok, err := st.try(b.Bytes); ok {
						return k, err
					}
				}
			}
		}
	}
	return Key{}, fmt.Errorf("digsig: %w", ErrNotKey)
}

func bareKey(pub crypto.PublicKey) (Key, bool, error) {
	if err := checkKeyType(pub); err != nil {
		return Key{}, true, err
	}
	id, err := KeyIDFromPublicKey(pub)
	return Key{KeyID: id, Public: pub}, true, err
}

// AddParsed adds a key from ParseKey under its own KeyID only, as Keylime's
// keyrings hold it (Keyring.AddCertificate also indexes a certificate under
// its public key's keyid, as evmctl finds it).
func (k *Keyring) AddParsed(key Key) error {
	return k.AddKey(key.KeyID, key.Public)
}
