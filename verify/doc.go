// Package verify decides whether a measurement list shows only what should
// have run: Keylime's entry verdicts under a Keylime runtime policy
// (package runtimepolicy), signatures against given and learned keys
// (package ima/digsig), the boot aggregate, and the list replayed to the
// TPM's PCRs in every bank. It is pure: the CLI (imago verify) and the
// attestation service call the same rules.
//
// # Rules
//
// Entries are judged as Keylime's process_measurement_list judges them
// (keylime/ima/ima.py and ast.py): an entry in another PCR fails
// (IDIMAPCR); a violation fails unless Options.AllowViolations
// (IDViolation); a listed template digest that its data does not hash to
// fails (IDTemplateHash), as does a malformed signature header, even on an
// excluded path. Then, by template: ima, ima-ng and ima-ngv2 entries by the
// digest rule (an excluded path passes, a path the policy lacks is
// IDNotInAllowlist, a digest it does not list is IDRuntimePolicyHash);
// ima-sig, ima-sigv2 and ima-modsig entries pass with a valid v2 or v3
// signature by a known key, else by the digest rule, and without a policy
// fail (IDInvalidSignature); ima-buf entries holding a key must be listed
// in keyrings[<keyring>] unless the keyring is ignored, and the key is then
// learned for later ima-sig entries; other ima-buf entries are checked
// against the policy's ima-buf map. Custom templates follow the fields they
// have. The boot aggregate (and boot_aggregate_late, reported as a late
// start) must be one of the policy's digests or a value computed from the
// event log's or the TPM's PCR 0-7 / 0-9 (CheckBootAggregate). A first
// entry with the TPM-bypass aggregate (zeros) on a list the quote shows the
// TPM holds is a list adopted by a late TPM (bootagg.CheckBypass, the rule
// imago log check applies): its verdict is VerdictAdopted, reported and not
// a failure; not held, it is judged as above and noted as TPM-bypass.
//
// # Incremental verification
//
// A Policy is compiled once (NewPolicy) and is safe for concurrent use
// across nodes and rounds. Per list, a small State carries what one round
// hands to the next: the index of the next entry, the running PCR value per
// bank and PCR, the keys learned from the list, the boot aggregate's
// verdict, how far the last quote lagged, and the failures so far.
// Policy.Verify takes the previous State and the entries from State.Next
// on (Round), optionally with quoted PCR values, and returns the Report and
// the new State, to be stored together.
//
// With quoted values the new entries are replayed from the State's values
// in every quoted bank and the State advances to the last entry at which
// every bank matches: a list read after the quote may run ahead, and the
// entries past the match are read again next round. If no prefix matches,
// the Report has an IDPCRMismatch failure and the State does not advance.
// Without quoted values every entry is consumed. An error from Verify
// means the input could not be checked; a failed check is data in the
// Report (Report.Err gives a *FailedError for errors.As).
//
// # Cost
//
// One pass over the entries: the reader copies each entry into a batch;
// workers on every core compute the template digests of every bank and the
// verdicts; one goroutine per bank extends. Nothing is allocated per entry
// that passes, and memory is bounded by the batches in flight whatever the
// list's length.
package verify
