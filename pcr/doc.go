// Package pcr owns TPM PCR banks and values: the bank (hash) identities a TPM
// reports, the extend operation, sets of PCR values with their JSON form, and
// the readers for the PCR dumps people have at hand (evmctl's "PCR-NN: hex",
// tpm2_pcrread YAML, imago's JSON).
//
// It is pure: no files, no TPM. See ima-spec.md §1.2 (algorithm ids) and §4.4
// (extend).
package pcr
