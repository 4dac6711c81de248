// Package enroll decides whether an attestation key (AK) is bound to a
// genuine TPM, the verifier's half of enrollment:
//
//   - CheckAK: the AK's public area (TPM 2.0 Part 2 §12.2.4) is a
//     restricted signing key that never leaves its TPM (fixedTPM,
//     fixedParent, sensitiveDataOrigin), of a size and scheme quotes may use.
//   - Roots.CheckEKCertificate: the endorsement key's certificate chains to
//     the configured roots (TCG EK Credential Profile), and certifies the EK
//     public key the attester sent. swtpm's certificates mark their subject
//     alternative name critical with only a directoryName, which Go's x509
//     does not handle; that one extension is accepted.
//   - NewCredential: TPM2_MakeCredential done in software (Part 1 §24,
//     Part 3 §12.6): a secret only a TPM holding both the EK and an object
//     with the AK's name can recover with TPM2_ActivateCredential.
//
// The rule that one EK enrols one node is the store's (a unique index).
// The package is pure: randomness and the verification time are
// parameters.
package enroll
