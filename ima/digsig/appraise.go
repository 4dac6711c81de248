package digsig

import (
	"errors"
	"fmt"
	"slices"

	"github.com/imago-ima/imago/ima"
)

// Status is the kernel's enum integrity_status, the outcome of an
// appraisal.
type Status int

// The kernel's enum integrity_status.
const (
	StatusPass          Status = iota // INTEGRITY_PASS
	StatusPassImmutable               // INTEGRITY_PASS_IMMUTABLE (EVM portable signature)
	StatusFail                        // INTEGRITY_FAIL
	StatusFailImmutable               // INTEGRITY_FAIL_IMMUTABLE
	StatusNoLabel                     // INTEGRITY_NOLABEL: no security.ima
	StatusNoXattrs                    // INTEGRITY_NOXATTRS
	StatusUnknown                     // INTEGRITY_UNKNOWN: a value the kernel cannot check
)

var statusNames = [...]string{"pass", "pass_immutable", "fail", "fail_immutable", "nolabel", "noxattrs", "unknown"}

// String returns the status as "pass", "fail", "nolabel", ...
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status_%d", int(s))
}

// Requirements are the flags of the appraise rule that matched (ima-spec.md
// §8): what a file's security.ima must be to pass.
type Requirements struct {
	// Signature: appraise_type=imasig (or sigv3) — IMA_DIGSIG_REQUIRED; a
	// hash value fails.
	Signature bool
	// SigV3: appraise_type=sigv3 — IMA_SIGV3_REQUIRED; a version 2
	// signature fails.
	SigV3 bool
	// Verity: digest_type=verity — IMA_VERITY_REQUIRED; with Signature,
	// only a 0x06 fs-verity signature passes.
	Verity bool
	// AllowedAlgos: appraise_algos=; empty allows any. The value's hash
	// algorithm must be one of them.
	AllowedAlgos []ima.HashAlg
}

// AppraisalError is a failed appraisal: Status is the kernel's integrity
// status and Cause its audit cause ("invalid-hash", "invalid-signature",
// "IMA-signature-required", "missing-hash", "denied-hash-algorithm", ...).
// Err, when set, is the underlying error (a *SignatureError,
// *UnknownKeyError, *FormatError, ...).
type AppraisalError struct {
	Status Status
	Cause  string
	Err    error
}

func (e *AppraisalError) Error() string {
	s := fmt.Sprintf("digsig: appraisal %s: %s", e.Status, e.Cause)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *AppraisalError) Unwrap() error { return e.Err }

func appraisalErr(s Status, cause string, err error) *AppraisalError {
	return &AppraisalError{Status: s, Cause: cause, Err: err}
}

// Appraise decides, as the kernel's ima_appraise_measurement and
// xattr_verify do, whether a file passes appraisal: value is its
// security.ima (nil if it has none), digest its digest computed with
// HashAlgOf(value, ima_hash) (for a 0x06 value, its fs-verity digest), keys
// the .ima keyring and req the matching rule's flags. It returns nil for
// INTEGRITY_PASS and an *AppraisalError otherwise.
//
// The kernel's special cases for new files (FMODE_CREATED), EVM and modsig
// are not modelled: the caller handles them.
func Appraise(value []byte, digest ima.Digest, keys *Keyring, req Requirements) error {
	if len(value) == 0 {
		cause := "missing-hash"
		if req.Signature {
			cause = "IMA-signature-required"
			if req.Verity {
				cause = "verity-signature-required"
			}
		}
		return appraisalErr(StatusNoLabel, cause, nil)
	}
	if err := xattrVerify(value, digest, keys, req); err != nil {
		return err
	}
	// process_measurement: the digest must use an allowed algorithm.
	if len(req.AllowedAlgos) > 0 {
		if alg := HashAlgOf(value, digest.Alg); !slices.Contains(req.AllowedAlgos, alg) {
			return appraisalErr(StatusFail, "denied-hash-algorithm", fmt.Errorf("digsig: %s is not in appraise_algos", alg))
		}
	}
	return nil
}

// xattrVerify follows the kernel's xattr_verify, case by case.
func xattrVerify(value []byte, digest ima.Digest, keys *Keyring, req Requirements) error {
	v, err := ParseValue(value)
	if err != nil {
		if errors.Is(err, ErrUnknownType) {
			return appraisalErr(StatusUnknown, "unknown-ima-data", err)
		}
		if Type(value[0]).IsSignature() {
			if len(value) > 1 && value[1] != 2 && value[1] != 3 {
				return appraisalErr(StatusFail, "invalid-signature-version", err)
			}
			return appraisalErr(StatusFail, "invalid-signature", err)
		}
		return appraisalErr(StatusFail, "invalid-hash", err)
	}
	switch v.Type {
	case TypeDigest, TypeDigestNG:
		if req.Signature {
			if req.Verity {
				return appraisalErr(StatusFail, "verity-signature-required", nil)
			}
			return appraisalErr(StatusFail, "IMA-signature-required", nil)
		}
		if digest.Alg != v.Digest.Alg || string(digest.Sum) != string(v.Digest.Sum) {
			var err error
			if digest.Alg != v.Digest.Alg {
				err = &AlgorithmMismatchError{Value: v.Digest.Alg, Digest: digest.Alg, Size: len(digest.Sum)}
			}
			return appraisalErr(StatusFail, "invalid-hash", err)
		}
		return nil
	case TypeDigSig:
		if req.Signature && req.Verity {
			return appraisalErr(StatusFail, "verity-signature-required", nil)
		}
		if v.Sig.Version > 3 || v.Sig.Version < 2 {
			return appraisalErr(StatusFail, "invalid-signature-version", nil)
		}
		if req.SigV3 && v.Sig.Version != 3 {
			return appraisalErr(StatusFail, "IMA-sigv3-required", nil)
		}
		return sigResult(VerifyHeader(v.Sig, digest, keys), "invalid-signature")
	case TypeVerityDigSig:
		if req.Signature && !req.Verity {
			return appraisalErr(StatusFail, "IMA-signature-required", nil)
		}
		if v.Sig.Version != 3 {
			return appraisalErr(StatusFail, "invalid-signature-version", nil)
		}
		return sigResult(VerifyHeader(v.Sig, digest, keys), "invalid-verity-signature")
	}
	// 0x05 (EVM portable signature) belongs in security.evm.
	return appraisalErr(StatusUnknown, "unknown-ima-data", nil)
}

func sigResult(err error, cause string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnsupported):
		// integrity_digsig_verify's -EOPNOTSUPP.
		return appraisalErr(StatusUnknown, cause, err)
	}
	return appraisalErr(StatusFail, cause, err)
}
