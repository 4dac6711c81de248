package verify

import (
	"fmt"
)

// Failure ids: Keylime's dotted event ids (keylime/ima/ima.py, ast.py,
// failure.py), so that tooling written for Keylime's results reads ours.
// Keylime files every digest check under "ima-ng", whatever the template,
// and spells its signature check "validator".
const (
	// IDNotInAllowlist: the policy lists no digest for the path (or
	// keyring, or ima-buf name).
	IDNotInAllowlist = "ima.validation.ima-ng.not_in_allowlist"
	// IDRuntimePolicyHash: the path is listed with other digests.
	IDRuntimePolicyHash = "ima.validation.ima-ng.runtime_policy_hash"
	// IDInvalidSignature: without a policy, an ima-sig entry has no
	// signature that a given key verifies.
	IDInvalidSignature = "ima.validator.ima-sig.invalid_signature"
	// IDInvalidKey: an ima-buf keyring entry holds a key of a type that
	// cannot be used (not RSA or EC).
	IDInvalidKey = "ima.invalid_key"
	// IDIMAPCR: the entry was extended into a PCR other than the list's
	// (10 unless told otherwise).
	IDIMAPCR = "ima.validation.ima_pcr"
	// IDViolation: a violation entry (all-zero template digest: a file
	// measured while open for write, or written while open for read).
	// Keylime's id is "tomtou"; imago fails it unless violations are
	// allowed.
	IDViolation = "ima.validation.tomtou"
	// IDTemplateHash: the listed template digest is not the hash of the
	// entry's template data, or (as Keylime reads it) its signature field
	// is malformed.
	IDTemplateHash = "ima.validation.ima_hash"
	// IDNoValidator: the entry's template has neither a digest and a
	// name nor a buffer, so no rule applies.
	IDNoValidator = "ima.validation.no_validator"
	// IDPCRMismatch: the list replays to the quoted PCR values at no
	// entry, in some bank.
	IDPCRMismatch = "ima.pcr_mismatch"
	// IDQuoteProgress: the quote did not catch up with the entries the
	// previous round read past its match (Keylime's quote_progress).
	IDQuoteProgress = "ima.quote_progress"
)

// Failure is one finding: an entry that fails a rule, or a list-level
// finding (Entry -1) such as a PCR mismatch.
type Failure struct {
	// Entry is the 0-based index of the entry in the whole list (not in
	// the round), or -1.
	Entry int `json:"entry"`
	// Path is the entry's path or event name.
	Path string `json:"path,omitempty"`
	// ID is Keylime's dotted id.
	ID       string `json:"id"`
	Template string `json:"template,omitempty"`
	// Expected are the digests the policy allows (hex), when it lists any.
	Expected []string `json:"expected,omitempty"`
	// Got is what the entry has: "alg:hex" for a digest, the PCR index, ...
	Got     string `json:"got,omitempty"`
	Message string `json:"message,omitempty"`
}

func (f Failure) String() string {
	s := fmt.Sprintf("entry %d", f.Entry)
	if f.Entry < 0 {
		s = "list"
	}
	if f.Path != "" {
		s += " " + f.Path
	}
	s += ": " + f.ID
	if f.Message != "" {
		s += ": " + f.Message
	}
	if len(f.Expected) > 0 {
		s += fmt.Sprintf(" (expected %v, got %s)", f.Expected, f.Got)
	} else if f.Got != "" {
		s += " (got " + f.Got + ")"
	}
	return s
}

// FailedError is Report.Err for a round that found failures: the first
// one and how many there are. Match it with errors.As.
type FailedError struct {
	Count int
	First Failure
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("verify: %d failure(s), first: %s", e.Count, e.First)
}
