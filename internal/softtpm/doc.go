// Package softtpm emulates, in software, the part of a TPM 2.0 that remote
// attestation uses, for load tests with thousands of attesters in one
// process: an ECC endorsement key with a certificate from a test CA, an
// ECC attestation key, PCR banks, TPM2_ActivateCredential's decryption of
// a MakeCredential blob (TPM 2.0 Part 1 §24: KDFe seed recovery, the
// KDFa-derived integrity HMAC and AES-CFB storage key), and TPM2_Quote's
// TPMS_ATTEST, marshalled with go-tpm and signed by the AK. The verifier
// cannot tell its quotes from a TPM's: only the EK certificate's issuer
// says it is not a genuine TPM, so only a verifier told to trust the test
// CA (--ek-roots) enrols it.
//
// It implements attester.TPM.
package softtpm
