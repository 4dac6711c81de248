package digsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/imago-ima/imago/ima"
)

// cryptoHash maps a kernel hash_algo to the crypto.Hash whose DigestInfo
// an RSA PKCS#1 v1.5 signature carries; false where the standard library
// has none (md4, rmd*, wp*, tgr*, sm3, streebog*).
func cryptoHash(a ima.HashAlg) (crypto.Hash, bool) {
	switch a {
	case ima.HashMD5:
		return crypto.MD5, true
	case ima.HashSHA1:
		return crypto.SHA1, true
	case ima.HashSHA224:
		return crypto.SHA224, true
	case ima.HashSHA256:
		return crypto.SHA256, true
	case ima.HashSHA384:
		return crypto.SHA384, true
	case ima.HashSHA512:
		return crypto.SHA512, true
	case ima.HashSHA3_256:
		return crypto.SHA3_256, true
	case ima.HashSHA3_384:
		return crypto.SHA3_384, true
	case ima.HashSHA3_512:
		return crypto.SHA3_512, true
	}
	return 0, false
}

// FileIDHash returns what a version 3 signature signs (ima-spec.md §10.2):
// the hash, with alg, of the used prefix of struct ima_file_id,
// hash_type ‖ hash_algorithm ‖ digest. hash_type is the value's type byte
// (TypeVerityDigSig for an fs-verity digest, TypeDigSig for a regular file
// digest in the newest kernels).
func FileIDHash(t Type, alg ima.HashAlg, digest []byte) ([]byte, error) {
	if len(digest) != alg.Size() || !alg.Valid() {
		return nil, &AlgorithmMismatchError{Value: alg, Digest: alg, Size: len(digest)}
	}
	h := alg.New()
	if h == nil {
		return nil, fmt.Errorf("digsig: %w: hash algorithm %s", ErrUnsupported, alg)
	}
	h.Write([]byte{byte(t), byte(alg)})
	h.Write(digest)
	return h.Sum(nil), nil
}

// Verify checks the signature in a security.ima value (or an ima-sig
// list's sig field) against the file digest and the keyring's keys
// (ima-spec.md §10.2): a version 2 signature signs digest.Sum, a version 3
// signature FileIDHash of it. For a 0x06 value digest is the file's
// fs-verity digest. It returns nil if a key with the signature's keyid
// verifies it, else a *FormatError, *AlgorithmMismatchError,
// *UnknownKeyError, *SignatureError, or an error wrapping ErrNotSignature
// or ErrUnsupported.
func Verify(value []byte, digest ima.Digest, keys *Keyring) error {
	v, err := ParseValue(value)
	if err != nil {
		return err
	}
	if !v.Type.IsSignature() {
		return fmt.Errorf("digsig: %w: %s", ErrNotSignature, v.Type)
	}
	return VerifyHeader(v.Sig, digest, keys)
}

// VerifyHeader is Verify for a header already decoded by ima.ParseSigHeader
// (for example ima.Entry.Signature).
func VerifyHeader(h ima.SigHeader, digest ima.Digest, keys *Keyring) error {
	t := Type(h.Type)
	if !h.HashAlg.Valid() {
		return fmt.Errorf("digsig: %w: signature hash_algo %d", ErrUnsupported, uint8(h.HashAlg))
	}
	if digest.Alg != h.HashAlg || len(digest.Sum) != h.HashAlg.Size() {
		return &AlgorithmMismatchError{Value: h.HashAlg, Digest: digest.Alg, Size: len(digest.Sum)}
	}
	msg := digest.Sum
	switch {
	case h.Version == 3:
		var err error
		if msg, err = FileIDHash(t, h.HashAlg, digest.Sum); err != nil {
			return err
		}
	case h.Version == 2 && t != TypeVerityDigSig:
	default:
		return fmt.Errorf("digsig: %w: signature version %d in a %s value", ErrUnsupported, h.Version, t)
	}
	ch, ok := cryptoHash(h.HashAlg)
	if !ok {
		return fmt.Errorf("digsig: %w: signatures over %s digests", ErrUnsupported, h.HashAlg)
	}
	return verifyCandidates(h, msg, ch, keys.Lookup(h.KeyID))
}

// VerifyHeaderWith is VerifyHeader with the candidate keys given: those
// of cands whose KeyID is the signature's are tried (a verifier that keeps
// keys in several rings, such as keys learned from a measurement list,
// passes them all).
func VerifyHeaderWith(h ima.SigHeader, digest ima.Digest, cands []Key) error {
	var match []Key
	for _, k := range cands {
		if k.KeyID == h.KeyID {
			match = append(match, k)
		}
	}
	var ring Keyring
	for _, k := range match {
		ring.add(k.KeyID, k)
	}
	return VerifyHeader(h, digest, &ring)
}

func verifyCandidates(h ima.SigHeader, msg []byte, ch crypto.Hash, cands []Key) error {
	if len(cands) == 0 {
		return &UnknownKeyError{KeyID: h.KeyID}
	}
	for _, k := range cands {
		if verifyKey(k.Public, ch, msg, h.Signature) {
			return nil
		}
	}
	return &SignatureError{KeyID: h.KeyID, Version: h.Version, HashAlg: h.HashAlg, Err: ErrBadSignature}
}

func verifyKey(pub crypto.PublicKey, ch crypto.Hash, msg, sig []byte) bool {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, ch, msg, sig) == nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(pub, msg, sig)
	case *Secp256k1PublicKey:
		return pub.verify(msg, sig)
	}
	return false
}

// Sign returns a signature v2 value (0x03 0x02 hash_algo keyid sig_size
// sig) over digest, a file digest computed with alg, as evmctl ima_sign
// writes it: RSA PKCS#1 v1.5 with alg's DigestInfo, or ECDSA ASN.1 DER.
// key.Sign is called with a nil random source, so ECDSA signatures are
// deterministic (RFC 6979). keyid is usually KeyIDFromCertificate or
// KeyIDFromPublicKey(key.Public()).
func Sign(key crypto.Signer, keyid uint32, alg ima.HashAlg, digest []byte) ([]byte, error) {
	return sign(key, TypeDigSig, 2, keyid, alg, digest)
}

// SignV3 returns a signature v3 value of type t (TypeDigSig for a regular
// file digest, TypeVerityDigSig for an fs-verity digest): the signature is
// over FileIDHash(t, alg, digest).
func SignV3(key crypto.Signer, t Type, keyid uint32, alg ima.HashAlg, digest []byte) ([]byte, error) {
	if !t.IsSignature() {
		return nil, fmt.Errorf("digsig: %w: %s", ErrNotSignature, t)
	}
	msg, err := FileIDHash(t, alg, digest)
	if err != nil {
		return nil, err
	}
	return sign(key, t, 3, keyid, alg, msg)
}

func sign(key crypto.Signer, t Type, version uint8, keyid uint32, alg ima.HashAlg, msg []byte) ([]byte, error) {
	ch, ok := cryptoHash(alg)
	if !ok {
		return nil, fmt.Errorf("digsig: %w: signatures over %s digests", ErrUnsupported, alg)
	}
	if len(msg) != ch.Size() {
		return nil, &AlgorithmMismatchError{Value: alg, Digest: alg, Size: len(msg)}
	}
	if err := checkKeyType(key.Public()); err != nil {
		return nil, err
	}
	sig, err := key.Sign(nil, msg, ch)
	if err != nil {
		return nil, fmt.Errorf("digsig: sign: %w", err)
	}
	if len(sig) > 0xffff {
		return nil, errors.New("digsig: signature longer than 65535 bytes")
	}
	return appendSig(nil, t, version, alg, keyid, sig), nil
}

// VerifyEntry verifies the signature in a measurement list entry's sig (or
// evmsig) field against the entry's own file digest (d-ng, d-ngv2 or d),
// as evmctl ima_measurement --verify-sig does. An entry without a
// signature gives an error wrapping ima.ErrNoField.
func VerifyEntry(e *ima.Entry, keys *Keyring) error {
	h, raw, err := e.Signature()
	if err != nil {
		if raw != nil {
			var he *ima.SigHeaderError
			if errors.As(err, &he) {
				return &FormatError{Offset: he.Offset, Err: he.Err}
			}
		}
		return fmt.Errorf("entry signature: %w", err) // ima's error names its package
	}
	d, err := e.FileDigest()
	if err != nil {
		return fmt.Errorf("entry digest: %w", err)
	}
	return VerifyHeader(h, d, keys)
}
