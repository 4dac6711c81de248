// Package runtimepolicy owns Keylime's runtime policy format (version 1, as
// keylime/ima/ima.py's RUNTIME_POLICY_SCHEMA defines it), its DSSE-signed
// envelopes, and the legacy inputs Keylime converts: sha*sum-style
// allowlists with %keyring: lines and exclude lists.
//
// # Reading
//
// Compile reads a policy straight into a Compiled matcher, streaming: a
// policy with a million paths is never held as text or as a Go map, only as
// compact tables of names and binary digests (Compiled.Digests,
// Compiled.Keyring, Compiled.IMABuf), the exclude list compiled
// (Compiled.Excluded) and the verification keys parsed. Parse reads the
// same input into a Policy that can be edited, merged (Create) and written
// back byte for byte as Keylime's json.dumps writes it (Policy.Marshal).
//
// Reading is strict where Keylime's schema is (digests are 40-128
// lower-case hex digits, log_hash_alg one of four, dm_policy null, a
// verification-keys document with both keyids and pubkeys) and lenient
// where Keylime's own test data needs it: keys the schema requires may be
// missing (release, generator, excludes, ...), and a digest may carry an
// "alg:" prefix. An exclude that Go's regexp cannot compile refuses the
// policy with the pattern and why (*ExcludeError); Keylime would drop the
// whole exclude list at verification time and log it.
//
// # Signed policies
//
// A document with a payload is a DSSE envelope (payloadType
// application/vnd.keylime+json): it is read only when Options.Key verifies
// one of its signatures (ECDSA over SHA-256 of the DSSE pre-authentication
// encoding), and an envelope without a key is refused (ErrNeedsKey), as is
// an unsigned policy when a key is given (ErrNotSigned). Sign writes the
// envelope keylime-policy sign writes, keyid = SHA-256 of the PEM public
// key (KeyID).
//
// The package is pure: it reads from the io.Reader it is given and never
// touches files, the clock or the environment (timestamps come in as
// strings).
package runtimepolicy
