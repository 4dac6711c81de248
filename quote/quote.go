package quote

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/pcr"
)

// Limits on attester input, checked before decoding.
const (
	// MaxAttestSize bounds a TPMS_ATTEST. A quote carries a name (at most
	// 2+68 bytes), qualifying data (2+64), the clock (17), the firmware
	// version (8), a PCR selection (at most 16 banks of 7 bytes) and a digest
	// (2+64): well under 1 KiB.
	MaxAttestSize = 1024
	// MaxSignatureSize bounds a TPMT_SIGNATURE: an RSA-4096 signature is 512
	// bytes plus 6 bytes of header.
	MaxSignatureSize = 1024
	// MaxNonceSize is the largest qualifying data a TPM accepts
	// (sizeof(TPMU_HA), 64 bytes).
	MaxNonceSize = 64
)

// FormatError reports attestation or signature bytes that are not a
// well-formed TPM quote.
type FormatError struct {
	// Field is "attest" or "signature".
	Field string
	Err   error
}

func (e *FormatError) Error() string { return fmt.Sprintf("quote: %s: %v", e.Field, e.Err) }
func (e *FormatError) Unwrap() error { return e.Err }

// ClockInfo is TPMS_CLOCK_INFO (TPM 2.0 Part 2 §10.11.1): the TPM's signed
// clock and reset counters.
type ClockInfo struct {
	// Clock is milliseconds the TPM has been powered, kept across resets.
	Clock uint64 `json:"clock"`
	// ResetCount counts TPM Resets (a reboot) since TPM2_Clear.
	ResetCount uint32 `json:"reset_count"`
	// RestartCount counts TPM Restarts and Resumes since the last Reset.
	RestartCount uint32 `json:"restart_count"`
	// Safe says no greater Clock value was ever reported.
	Safe bool `json:"safe"`
}

// Quote is a decoded TPM2_Quote.
type Quote struct {
	// Attest is the TPMS_ATTEST exactly as the TPM signed it.
	Attest []byte
	// Signer is the qualified name of the signing key.
	Signer []byte
	// Nonce is the qualifying data (extraData).
	Nonce []byte
	// Clock is the TPM's clock information at the quote.
	Clock ClockInfo
	// FirmwareVersion is the TPM vendor's firmware version.
	FirmwareVersion uint64
	// Selection is the quoted PCR selection, in the order the TPM hashed it.
	Selection Selection
	// PCRDigest is the digest of the selected PCRs under the signing
	// scheme's hash.
	PCRDigest []byte
	// Signature is the decoded TPMT_SIGNATURE.
	Signature tpm2.TPMTSignature
}

var (
	errNotGenerated = errors.New("not TPM-generated (magic is not TPM_GENERATED_VALUE)")
	errNotQuote     = errors.New("not a quote (type is not TPM_ST_ATTEST_QUOTE)")
	errNonCanonical = errors.New("bytes do not re-encode to themselves (trailing or non-canonical data)")
)

// Parse decodes a quote's TPMS_ATTEST and TPMT_SIGNATURE bytes. It checks
// only the form: call the Check methods for what the quote says.
func Parse(attest, sig []byte) (*Quote, error) {
	if len(attest) > MaxAttestSize {
		return nil, &FormatError{"attest", fmt.Errorf("%d bytes, more than %d", len(attest), MaxAttestSize)}
	}
	if len(sig) > MaxSignatureSize {
		return nil, &FormatError{"signature", fmt.Errorf("%d bytes, more than %d", len(sig), MaxSignatureSize)}
	}
	a, err := unmarshal[tpm2.TPMSAttest](attest)
	if err != nil {
		return nil, &FormatError{"attest", err}
	}
	if n := attestLen(a); n != len(attest) {
		return nil, &FormatError{"attest", fmt.Errorf("%w: %d bytes, the structure has %d", errNonCanonical, len(attest), n)}
	}
	if a.Magic != tpm2.TPMGeneratedValue {
		return nil, &FormatError{"attest", errNotGenerated}
	}
	if a.Type != tpm2.TPMSTAttestQuote {
		return nil, &FormatError{"attest", errNotQuote}
	}
	info, err := a.Attested.Quote()
	if err != nil {
		return nil, &FormatError{"attest", err}
	}
	if len(a.ExtraData.Buffer) > MaxNonceSize {
		return nil, &FormatError{"attest", fmt.Errorf("qualifying data of %d bytes, more than %d", len(a.ExtraData.Buffer), MaxNonceSize)}
	}
	selection, err := selectionFromTPM(info.PCRSelect)
	if err != nil {
		return nil, &FormatError{"attest", err}
	}
	s, err := unmarshal[tpm2.TPMTSignature](sig)
	if err != nil {
		return nil, &FormatError{"signature", err}
	}
	if n, ok := signatureLen(s); !ok || n != len(sig) {
		return nil, &FormatError{"signature", fmt.Errorf("%w: %d bytes, the structure has %d", errNonCanonical, len(sig), n)}
	}
	return &Quote{
		Attest:          bytes.Clone(attest),
		Signer:          bytes.Clone(a.QualifiedSigner.Buffer),
		Nonce:           bytes.Clone(a.ExtraData.Buffer),
		Clock:           clockFromTPM(a.ClockInfo),
		FirmwareVersion: a.FirmwareVersion,
		Selection:       selection,
		PCRDigest:       bytes.Clone(info.PCRDigest.Buffer),
		Signature:       *s,
	}, nil
}

func clockFromTPM(c tpm2.TPMSClockInfo) ClockInfo {
	return ClockInfo{Clock: c.Clock, ResetCount: c.ResetCount, RestartCount: c.RestartCount, Safe: bool(c.Safe)}
}

// unmarshal decodes one TPM structure with go-tpm, turning a panic in the
// decoder into an error. go-tpm ignores bytes after the structure: callers
// check the length (attestLen, signatureLen) or re-encode.
func unmarshal[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](data []byte) (v *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("go-tpm decoder panicked: %v", r)
		}
	}()
	return tpm2.Unmarshal[T, P](data)
}

// attestLen is the encoded size of a decoded quote attestation (TPM 2.0
// Part 2 §10.12.12): magic, type, qualifiedSigner, extraData, clockInfo,
// firmwareVersion, then TPMS_QUOTE_INFO. Comparing it with the input's
// length rejects trailing bytes without re-encoding (go-tpm's reflective
// encoder is the most expensive step of a round).
func attestLen(a *tpm2.TPMSAttest) int {
	n := 4 + 2 + 2 + len(a.QualifiedSigner.Buffer) + 2 + len(a.ExtraData.Buffer) + 17 + 8
	info, err := a.Attested.Quote()
	if err != nil {
		return -1
	}
	n += 4
	for _, s := range info.PCRSelect.PCRSelections {
		n += 2 + 1 + len(s.PCRSelect)
	}
	return n + 2 + len(info.PCRDigest.Buffer)
}

// signatureLen is the encoded size of a decoded TPMT_SIGNATURE (§11.3.4)
// of the schemes quotes use.
func signatureLen(s *tpm2.TPMTSignature) (int, bool) {
	switch s.SigAlg {
	case tpm2.TPMAlgRSASSA:
		r, err := s.Signature.RSASSA()
		return 2 + 2 + 2 + len(r.Sig.Buffer), err == nil
	case tpm2.TPMAlgRSAPSS:
		r, err := s.Signature.RSAPSS()
		return 2 + 2 + 2 + len(r.Sig.Buffer), err == nil
	case tpm2.TPMAlgECDSA:
		e, err := s.Signature.ECDSA()
		return 2 + 2 + 2 + len(e.SignatureR.Buffer) + 2 + len(e.SignatureS.Buffer), err == nil
	}
	return 0, false
}

// ParsePublic decodes a TPMT_PUBLIC (TPM 2.0 Part 2 §12.2.4), the public
// area of a key, strictly as Parse does. MaxPublicSize bounds it.
func ParsePublic(data []byte) (*tpm2.TPMTPublic, error) {
	if len(data) > MaxPublicSize {
		return nil, &FormatError{"public", fmt.Errorf("%d bytes, more than %d", len(data), MaxPublicSize)}
	}
	p, err := unmarshal[tpm2.TPMTPublic](data)
	if err != nil {
		return nil, &FormatError{"public", err}
	}
	if !bytes.Equal(tpm2.Marshal(*p), data) {
		return nil, &FormatError{"public", errNonCanonical}
	}
	return p, nil
}

// MaxPublicSize bounds a TPMT_PUBLIC: an RSA-4096 key with a policy digest
// is under 700 bytes.
const MaxPublicSize = 1024

// Digest returns the PCR digest a TPM computes for a quote over sel with
// hash alg h: the hash of the selected PCR values concatenated in
// selection order (banks as listed, PCRs ascending), TPM 2.0 Part 3 §18.4.
// Every selected PCR must be in values.
func Digest(h pcr.Bank, sel Selection, values pcr.Set) ([]byte, error) {
	hh := h.New()
	if hh == nil {
		return nil, fmt.Errorf("quote: PCR digest: hash %s not supported", h)
	}
	for _, bs := range sel {
		for _, i := range bs.PCRs {
			v, ok := values.Get(bs.Bank, i)
			if !ok {
				return nil, &MissingPCRError{Bank: bs.Bank, PCR: i}
			}
			hh.Write(v)
		}
	}
	return hh.Sum(nil), nil
}

// MissingPCRError: a quoted PCR whose value was not given.
type MissingPCRError struct {
	Bank pcr.Bank
	PCR  int
}

func (e *MissingPCRError) Error() string {
	return fmt.Sprintf("quote: no value for quoted PCR %s:%d", e.Bank, e.PCR)
}
