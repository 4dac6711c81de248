package digsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeyIDFromPublicKeyBytes returns the keyid evmctl computes for a key
// without a certificate (ima-spec.md §10.3 step 3): the last 4 bytes of
// SHA-1 over the subjectPublicKey BIT STRING contents (the DER
// RSAPublicKey for RSA, the uncompressed point for EC). It is also RFC 5280
// method 1 for the SubjectKeyIdentifier, so the two agree for certificates
// made with OpenSSL's subjectKeyIdentifier=hash.
func KeyIDFromPublicKeyBytes(subjectPublicKey []byte) uint32 {
	sum := sha1.Sum(subjectPublicKey)
	return binary.BigEndian.Uint32(sum[16:])
}

// KeyIDFromSPKI is KeyIDFromPublicKeyBytes for a DER SubjectPublicKeyInfo;
// it works for any key algorithm, also ones Go cannot use (secp256k1).
func KeyIDFromSPKI(der []byte) (uint32, error) {
	bits, err := spkiBits(der)
	if err != nil {
		return 0, err
	}
	return KeyIDFromPublicKeyBytes(bits), nil
}

// KeyIDFromPublicKey is KeyIDFromPublicKeyBytes for an *rsa.PublicKey or
// *ecdsa.PublicKey.
func KeyIDFromPublicKey(pub crypto.PublicKey) (uint32, error) {
	if k, ok := pub.(*Secp256k1PublicKey); ok {
		return keyIDSecp256k1(k), nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return 0, fmt.Errorf("digsig: %w: public key: %v", ErrUnsupported, err)
	}
	return KeyIDFromSPKI(der)
}

// KeyIDFromCertificate returns the keyid the kernel finds a certificate's
// key by: the last 4 bytes of its SubjectKeyIdentifier, or, if it has none,
// the keyid of its public key (ima-spec.md §10.3).
func KeyIDFromCertificate(c *x509.Certificate) (uint32, error) {
	if len(c.SubjectKeyId) >= 4 {
		return binary.BigEndian.Uint32(c.SubjectKeyId[len(c.SubjectKeyId)-4:]), nil
	}
	return KeyIDFromSPKI(c.RawSubjectPublicKeyInfo)
}

// spkiBits returns the subjectPublicKey BIT STRING contents of a DER
// SubjectPublicKeyInfo (RFC 5280 §4.1).
func spkiBits(der []byte) ([]byte, error) {
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil {
		return nil, fmt.Errorf("digsig: %w: SubjectPublicKeyInfo: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("digsig: %w: %d bytes after the SubjectPublicKeyInfo", ErrMalformed, len(rest))
	}
	return spki.PublicKey.Bytes, nil
}

// MaxKeys bounds the keys one Keyring holds.
const MaxKeys = 4096

// Key is one verification key of a Keyring.
type Key struct {
	KeyID  uint32
	Public crypto.PublicKey  // *rsa.PublicKey, *ecdsa.PublicKey or *Secp256k1PublicKey
	Cert   *x509.Certificate // nil for a bare public key
}

// Keyring holds verification keys by keyid, like the kernel's .ima keyring.
// The zero value is empty and ready to use; a Keyring is not safe for
// concurrent mutation, but lookups may run concurrently once it is built.
type Keyring struct {
	byID map[uint32][]Key
	n    int
}

// Len returns the number of keys added.
func (k *Keyring) Len() int { return k.n }

// KeyIDs returns the keyids the keyring answers to, sorted.
func (k *Keyring) KeyIDs() []uint32 {
	ids := make([]uint32, 0, len(k.byID))
	for id := range k.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Lookup returns the keys with the given keyid.
func (k *Keyring) Lookup(keyid uint32) []Key {
	if k == nil {
		return nil
	}
	return k.byID[keyid]
}

func (k *Keyring) add(id uint32, key Key) {
	if k.byID == nil {
		k.byID = make(map[uint32][]Key)
	}
	key.KeyID = id
	k.byID[id] = append(k.byID[id], key)
}

func checkKeyType(pub crypto.PublicKey) error {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, *Secp256k1PublicKey:
		return nil
	}
	return fmt.Errorf("digsig: %w: %T keys (only RSA, ECDSA and secp256k1)", ErrUnsupported, pub)
}

// AddCertificate adds a certificate's key under the keyid of its
// SubjectKeyIdentifier (as the kernel finds it) and, if that differs, under
// the keyid of its public key (as evmctl computes it). It returns the
// kernel's keyid.
func (k *Keyring) AddCertificate(c *x509.Certificate) (uint32, error) {
	if err := checkKeyType(c.PublicKey); err != nil {
		return 0, err
	}
	if k.n >= MaxKeys {
		return 0, fmt.Errorf("digsig: %w: more than %d keys", ErrTooLarge, MaxKeys)
	}
	id, err := KeyIDFromCertificate(c)
	if err != nil {
		return 0, err
	}
	k.add(id, Key{Public: c.PublicKey, Cert: c})
	if pid, err := KeyIDFromSPKI(c.RawSubjectPublicKeyInfo); err == nil && pid != id {
		k.add(pid, Key{Public: c.PublicKey, Cert: c})
	}
	k.n++
	return id, nil
}

// AddPublicKey adds a bare public key under the keyid evmctl computes for
// it (KeyIDFromPublicKey) and returns that keyid.
func (k *Keyring) AddPublicKey(pub crypto.PublicKey) (uint32, error) {
	id, err := KeyIDFromPublicKey(pub)
	if err != nil {
		return 0, err
	}
	return id, k.AddKey(id, pub)
}

// AddKey adds a public key under an explicit keyid (evmctl --keyid).
func (k *Keyring) AddKey(keyid uint32, pub crypto.PublicKey) error {
	if err := checkKeyType(pub); err != nil {
		return err
	}
	if k.n >= MaxKeys {
		return fmt.Errorf("digsig: %w: more than %d keys", ErrTooLarge, MaxKeys)
	}
	k.add(keyid, Key{Public: pub})
	k.n++
	return nil
}

// Add parses data and adds every key in it: a DER certificate, a DER
// SubjectPublicKeyInfo, or PEM with CERTIFICATE and PUBLIC KEY blocks
// (other PEM blocks, such as private keys, are skipped). It returns the
// keyids added, and an error if data holds no key or a key cannot be used.
func (k *Keyring) Add(data []byte) ([]uint32, error) {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		id, err := k.addDER(data)
		if err != nil {
			return nil, err
		}
		return []uint32{id}, nil
	}
	var ids []uint32
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var (
			id  uint32
			err error
		)
		switch b.Type {
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				id, err = k.AddCertificate(c)
			}
		case "PUBLIC KEY":
			var pub crypto.PublicKey
			if pub, err = parsePKIX(b.Bytes); err == nil {
				id, err = k.AddPublicKey(pub)
			}
		case "RSA PUBLIC KEY":
			var pub *rsa.PublicKey
			if pub, err = x509.ParsePKCS1PublicKey(b.Bytes); err == nil {
				id, err = k.AddPublicKey(pub)
			}
		default:
			continue
		}
		if err != nil {
			var de *malformedKeyError
			if !errors.As(err, &de) && isForeign(err) {
				// x509's parse error: name the block, keep x509's words.
				err = &malformedKeyError{what: fmt.Sprintf("PEM %s block %d", b.Type, len(ids)+1), err: err}
			}
			return ids, err
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errors.New("digsig: no CERTIFICATE or PUBLIC KEY in PEM data")
	}
	return ids, nil
}

func (k *Keyring) addDER(der []byte) (uint32, error) {
	c, cerr := x509.ParseCertificate(der)
	if cerr == nil {
		return k.AddCertificate(c)
	}
	pub, perr := parsePKIX(der)
	if perr == nil {
		return k.AddPublicKey(pub)
	}
	return 0, &malformedKeyError{err: errNotKey}
}

// errNotKey: data that is neither a certificate nor a public key.
var errNotKey = errors.New("neither an X.509 certificate nor a public key (DER, or PEM CERTIFICATE or PUBLIC KEY blocks)")

// malformedKeyError is a key or certificate that cannot be parsed. It
// wraps ErrMalformed; its message names the package once and keeps the
// parser's own words without its package prefix ("x509: ", "asn1: ").
type malformedKeyError struct {
	what string
	err  error
}

func (e *malformedKeyError) Error() string {
	msg := e.err.Error()
	for _, p := range []string{"x509: ", "asn1: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if e.what == "" {
		return "digsig: " + msg
	}
	return "digsig: " + e.what + ": " + msg
}

func (e *malformedKeyError) Unwrap() []error { return []error{ErrMalformed, e.err} }

// isForeign reports whether err comes from a parser of the standard
// library rather than from this package (whose errors wrap its sentinels).
func isForeign(err error) bool {
	return !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed)
}
