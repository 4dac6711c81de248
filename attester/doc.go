// Package attester is the host side of remote attestation: it enrols the
// host's TPM with a verifier (an attestation key bound to the endorsement
// key by a credential exchange) and answers the verifier's challenges with
// a TPM2_Quote over every allocated bank, the IMA measurement list from the
// offset the verifier asks for, and the firmware event log.
//
// The TPM work goes through the TPM interface, implemented by Device (a
// real TPM through package tpm: an AK created as an endorsement-hierarchy
// primary from a fixed template, so the same AK comes back after every restart
// without persistent handles; the EK found among persistent handles or
// created from the TCG template matching its NV certificate; EK
// certificates from the low and high NV ranges and chains from
// 0x01c00100-0x01c001ff) and by internal/softtpm (emulated attesters for
// load tests).
package attester
