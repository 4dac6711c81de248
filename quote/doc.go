// Package quote decodes and checks TPM 2.0 quotes: the TPMS_ATTEST
// structure a TPM2_Quote returns (TPM 2.0 Part 2 §10.12.12, with
// TPMS_QUOTE_INFO §10.12.4 and TPMS_CLOCK_INFO §10.11.1) and its
// TPMT_SIGNATURE (§11.3.4).
//
// Parse reads the bytes an attester sent, strictly: the attestation must be
// a TPM-generated quote (magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE)
// with no bytes after the structure, within fixed size limits.
// The checks are separate and each returns an error of its own kind:
// CheckSignature (the attestation key signed these bytes), CheckNonce (the
// qualifying data is the verifier's nonce), CheckPCRs (the PCR digest is the
// digest of given PCR values in the quoted selection) and CheckClock (the
// signed clock and reset/restart counters never go backwards).
//
// The package is pure: bytes and values in, values and errors out.
package quote
