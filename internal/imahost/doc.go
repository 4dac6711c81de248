// Package imahost plays a host's IMA for tests and load generation: it
// builds the kernel's binary measurement list (ima-ng, SHA-256 file
// digests, the SHA-1 template digest column) entry by entry, extends each
// entry into PCR 10 of every bank of a TPM (a real one through package
// tpm, or an emulated one) exactly as the kernel does, and serves the list
// to an attester from any entry index. It also writes the Keylime runtime
// policy that allows what it measured.
package imahost
