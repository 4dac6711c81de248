package digsig

import (
	"errors"
	"fmt"

	"github.com/imago-ima/imago/ima"
)

// Sentinels; match with errors.Is.
var (
	// ErrMalformed: the bytes do not follow the layouts of ima-spec.md §1.3
	// and §10.1. It is ima.ErrMalformed, which ima.ParseSigHeader wraps.
	ErrMalformed = ima.ErrMalformed
	// ErrTooLarge: a value longer than MaxValueLen (ima.ErrTooLarge).
	ErrTooLarge = ima.ErrTooLarge
	// ErrUnknownType: a type byte that is not a security.ima value
	// (0x02 EVM HMAC, or anything above 0x06). The kernel's appraisal gives
	// INTEGRITY_UNKNOWN for these.
	ErrUnknownType = errors.New("unknown security.ima type")
	// ErrNotSignature: a hash value (0x01, 0x04) where a signature is needed.
	ErrNotSignature = errors.New("value is not a signature")
	// ErrUnknownKey: no key in the keyring has the signature's keyid.
	ErrUnknownKey = errors.New("unknown key")
	// ErrBadSignature: a key with the keyid exists but the signature does
	// not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrAlgorithmMismatch: the digest given is not of the algorithm the
	// value names.
	ErrAlgorithmMismatch = errors.New("hash algorithm mismatch")
	// ErrUnsupported: a hash algorithm, key type or signature version that
	// cannot be checked with Go's standard library (sm3, streebog, ...,
	// secp256k1, ML-DSA), or that the kernel refuses.
	ErrUnsupported = errors.New("not supported")
)

// FormatError reports a malformed security.ima value. Offset is the byte of
// the value where the problem lies (the value's length when it is cut
// short). Err wraps ErrMalformed, ErrTooLarge or ErrUnknownType.
type FormatError struct {
	Offset int
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("digsig: security.ima value at byte %d: %v", e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int, sentinel error, format string, args ...any) error {
	return &FormatError{Offset: off, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// UnknownKeyError reports a signature whose keyid is not in the keyring.
type UnknownKeyError struct {
	KeyID uint32
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("digsig: unknown key %08x", e.KeyID)
}

func (e *UnknownKeyError) Is(target error) bool { return target == ErrUnknownKey }

// SignatureError reports a signature that does not verify with any key of
// its keyid. Err wraps ErrBadSignature.
type SignatureError struct {
	KeyID   uint32
	Version uint8
	HashAlg ima.HashAlg
	Err     error
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("digsig: signature v%d %s keyid %08x: %v", e.Version, e.HashAlg, e.KeyID, e.Err)
}

func (e *SignatureError) Unwrap() error { return e.Err }

// AlgorithmMismatchError reports a digest that is not of the algorithm (or
// size) the value names.
type AlgorithmMismatchError struct {
	Value  ima.HashAlg // the algorithm the value names
	Digest ima.HashAlg // the algorithm of the digest given
	Size   int         // the size of the digest given
}

func (e *AlgorithmMismatchError) Error() string {
	if e.Value == e.Digest {
		return fmt.Sprintf("digsig: %s digest of %d bytes, want %d", e.Digest, e.Size, e.Value.Size())
	}
	return fmt.Sprintf("digsig: value is over a %s digest, got a %s digest", e.Value, e.Digest)
}

func (e *AlgorithmMismatchError) Is(target error) bool { return target == ErrAlgorithmMismatch }
