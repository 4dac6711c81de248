package runtimepolicy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"

	"github.com/imago-ima/imago/ima/digsig"
)

// PayloadType is the DSSE payload type of a Keylime runtime policy.
const PayloadType = "application/vnd.keylime+json"

// Errors of signed policies; match with errors.Is.
var (
	// ErrNeedsKey: a DSSE envelope was given without a key to check it
	// (Keylime's x509 backend takes the key from the envelope itself,
	// which proves nothing; imago refuses).
	ErrNeedsKey = errors.New("runtimepolicy: the policy is a DSSE envelope and no key was given to verify it")
	// ErrNotSigned: a key was given but the policy is not an envelope
	// (Keylime: "Runtime policy is not signed!").
	ErrNotSigned = errors.New("runtimepolicy: a policy key was given but the policy is not signed (not a DSSE envelope)")
	// ErrBadSignature: no signature of the envelope verifies with the key.
	ErrBadSignature = errors.New("runtimepolicy: DSSE signature verification failed")
)

// Options control how a policy is read.
type Options struct {
	// Key verifies a DSSE envelope: an ECDSA public key (P-256, P-384,
	// P-521 or secp256k1), as keylime-policy sign --backend ecdsa makes
	// them, or the key of the x509 backend's certificate. With a Key, an
	// unsigned policy is refused; without one, an envelope is.
	Key crypto.PublicKey
	// SizeHint is the size of the policy in bytes, if known: the tables
	// are made big enough at once.
	SizeHint int64

	slow bool // tests: no fast path for digest maps
}

// Signature is the envelope signature that verified a policy.
type Signature struct {
	// KeyID is the signature's keyid as the envelope states it (Keylime's
	// ecdsa backend: SHA-256 hex of the PEM public key; x509 backend: the
	// base64 PEM certificate).
	KeyID string
	// KeyIDMatches reports whether KeyID is the keyid of the key that
	// verified it (ecdsa backend).
	KeyIDMatches bool
}

// envelope is a DSSE envelope as read: {"payload", "payloadType",
// "signatures": [{"keyid", "sig"}]}.
type envelope struct {
	payload     string
	payloadType string
	sigs        []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	has [3]bool
}

func (e *envelope) set(key string, raw []byte) error {
	switch key {
	case "payload":
		e.has[0] = true
		if err := json.Unmarshal(raw, &e.payload); err != nil || e.payload == "" {
			return errors.New("want a non-empty string")
		}
	case "payloadType":
		e.has[1] = true
		if err := json.Unmarshal(raw, &e.payloadType); err != nil {
			return errors.New("want a string")
		}
	case "signatures":
		e.has[2] = true
		if err := json.Unmarshal(raw, &e.sigs); err != nil {
			return errors.New("want a list of {keyid, sig}")
		}
	}
	return nil
}

// open verifies the envelope with key and returns its payload.
func (e *envelope) open(key crypto.PublicKey) ([]byte, *Signature, error) {
	if !e.has[0] || !e.has[1] || !e.has[2] {
		return nil, nil, &FormatError{Member: "envelope", Err: errors.New("want payload, payloadType and signatures")}
	}
	if e.payloadType != PayloadType {
		return nil, nil, &FormatError{Member: "payloadType", Err: fmt.Errorf("%q, want %q", e.payloadType, PayloadType)}
	}
	if key == nil {
		return nil, nil, ErrNeedsKey
	}
	payload, err := dsseDecode(e.payload)
	if err != nil {
		return nil, nil, &FormatError{Member: "payload", Err: err}
	}
	kid, _ := KeyID(key)
	digest := sha256.Sum256(pae(e.payloadType, payload))
	for _, s := range e.sigs {
		sig, err := dsseDecode(s.Sig)
		if err != nil {
			continue
		}
		if verifyEC(key, digest[:], sig) {
			return payload, &Signature{KeyID: s.KeyID, KeyIDMatches: s.KeyID == kid}, nil
		}
	}
	return nil, nil, ErrBadSignature
}

// pae is DSSE's pre-authentication encoding, what is signed:
// "DSSEv1" SP len(type) SP type SP len(payload) SP payload.
func pae(payloadType string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(payloadType)+len(payload))
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}

// dsseDecode decodes an envelope field as Keylime's b64dec does: hex if it
// is hex, else standard base64, else URL-safe base64.
func dsseDecode(s string) ([]byte, error) {
	if len(s)%2 == 0 && len(s) > 0 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.URLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return nil, errors.New("neither hex nor base64")
}

func verifyEC(key crypto.PublicKey, digest, sig []byte) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *digsig.Secp256k1PublicKey:
		return k.VerifyASN1(digest, sig)
	}
	return false
}

// KeyID returns Keylime's DSSE keyid of a public key: the SHA-256 hex of
// its PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----", 64-column
// base64, trailing newline).
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := digsig.MarshalPKIX(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return hex.EncodeToString(sum[:]), nil
}

// ParseKey reads a key to verify envelopes with: a PEM or DER public key,
// certificate, or private key (its public half), which must be ECDSA.
func ParseKey(data []byte) (crypto.PublicKey, error) {
	k, err := digsig.ParseKey(data)
	if err != nil {
		return nil, err
	}
	switch k.Public.(type) {
	case *ecdsa.PublicKey, *digsig.Secp256k1PublicKey:
		return k.Public, nil
	}
	return nil, fmt.Errorf("runtimepolicy: DSSE policy keys are elliptic-curve keys (keylime-policy sign), not %T", k.Public)
}

// Sign wraps payload in a DSSE envelope signed with key (ECDSA with
// SHA-256 over the PAE, as keylime-policy sign --backend ecdsa does), and
// returns the envelope as Keylime writes it. The signature is deterministic
// (RFC 6979).
func Sign(payload []byte, key crypto.Signer) ([]byte, error) {
	if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("runtimepolicy: DSSE signing keys are ECDSA keys (keylime-policy sign), not %T", key.Public())
	}
	digest := sha256.Sum256(pae(PayloadType, payload))
	sig, err := key.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("runtimepolicy: sign: %w", err)
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	b := []byte(`{"payload": `)
	b = appendPyString(b, base64.StdEncoding.EncodeToString(payload))
	b = append(b, `, "payloadType": `...)
	b = appendPyString(b, PayloadType)
	b = append(b, `, "signatures": [{"keyid": `...)
	b = appendPyString(b, kid)
	b = append(b, `, "sig": `...)
	b = appendPyString(b, base64.StdEncoding.EncodeToString(sig))
	return append(b, "}]}"...), nil
}

// ParseSigner reads an EC private key to sign policies with (PEM "EC
// PRIVATE KEY" or "PRIVATE KEY", as keylime-policy writes and reads them).
func ParseSigner(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var k any
		var err error
		switch b.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("runtimepolicy: %s: %w", b.Type, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("runtimepolicy: only elliptic-curve keys sign policies (keylime-policy sign), not %T", k)
		}
		return ek, nil
	}
	return nil, errors.New("runtimepolicy: no EC PRIVATE KEY or PRIVATE KEY in PEM data")
}
