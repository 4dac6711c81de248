// Package digsig owns the security.ima xattr value and IMA file signatures
// (ima-spec.md §1.3 and §10): it parses and formats every value the kernel
// stores in security.ima (0x01 legacy digest, 0x04 digest-ng, 0x03 signature
// v2 and v3, 0x06 fs-verity signature v3, and the 0x05 EVM portable
// signature header), computes key ids (§10.3), keeps a Keyring of X.509
// certificates and public keys indexed by key id, verifies and makes
// signatures, and decides an appraisal the way the kernel's xattr_verify
// does (Appraise).
//
// # Values
//
// ParseValue decodes a value and Value.Append encodes it back to the same
// bytes. DigestValue builds the hash value the kernel's ima_fix_xattr and
// evmctl ima_hash write: 0x01 ‖ digest for sha1 (and md4, md5), 0x04 ‖ algo
// ‖ digest otherwise. The signature header (type, version, hash_algo, keyid,
// sig_size) is parsed by ima.ParseSigHeader, the one parser of that header;
// Value.Sig is an ima.SigHeader.
//
// # What is signed
//
// A version 2 signature signs the file digest itself; RSA keys use PKCS#1
// v1.5 with the DigestInfo of hash_algo, ECDSA keys an ASN.1 DER signature
// over the digest (§10.2). A version 3 signature signs
// H(hash_type ‖ hash_algo ‖ digest), the used prefix of struct ima_file_id,
// hashed with hash_algo (FileIDHash); hash_type is the value's own type
// byte: 0x06 for fs-verity digests and, in the newest kernels, 0x03 for
// regular file digests (0x05 is proposed).
//
// # Key ids
//
// The kernel looks a signature's keyid up as a suffix of the key's
// identifiers, which for an X.509 certificate is the last 4 bytes of its
// SubjectKeyIdentifier; evmctl uses the last 4 bytes of SHA-1 over the
// subjectPublicKey BIT STRING contents when it has no certificate. Keyring
// indexes each certificate under both, so it finds what the kernel and
// evmctl find.
//
// # Errors
//
// Failures are typed and match with errors.Is and errors.As: *FormatError
// (with the byte offset, wrapping ErrMalformed, ErrTooLarge or
// ErrUnknownType), *UnknownKeyError (ErrUnknownKey), *SignatureError
// (ErrBadSignature), *AlgorithmMismatchError (ErrAlgorithmMismatch),
// ErrUnsupported for an algorithm or key type Go's standard library cannot
// check, ErrNotSignature for a hash value given to Verify, and
// *AppraisalError carrying the kernel's integrity status and audit cause.
//
// # Keys
//
// Keyring.Add reads PEM or DER certificates and public keys; ParseKey reads
// one key the way Keylime does (certificate, public key or private key, DER
// or PEM) with the kernel's keyid, and Keyring.AddParsed indexes it under
// that keyid only. Keys are RSA, ECDSA on the NIST curves, and secp256k1
// (Secp256k1PublicKey, through github.com/decred/dcrd/dcrec/secp256k1: Go's
// standard library has no such curve and imago writes no curve code).
//
// The package is pure: it does no I/O and uses the standard library's crypto
// (crypto/x509, crypto/rsa, crypto/ecdsa, crypto/sha*) and decred's
// secp256k1. Sign makes
// RSA PKCS#1 v1.5 and deterministic (RFC 6979) ECDSA signatures without a
// source of randomness.
package digsig
