// Package appraise judges one attestation round: given what the verifier
// knows about a node (its AK, the state kept since the last round, the
// challenge it issued) and the evidence the attester sent, it returns the
// verdict, every failure, and the node's next state. It is the pure core of
// the verifier service; the service stores the state in the same
// transaction as the verdict.
//
// The order of the checks, each failure with its id:
//
//  1. the quote decodes (quote.malformed), is signed by the enrolled AK
//     (quote.signature), carries the challenge's nonce (quote.nonce) and
//     selection (quote.pcr_selection), and the PCR values sent hash to its
//     digest (quote.pcr_digest);
//  2. the signed clock and reset/restart counters do not go backwards
//     (quote.clock); a reset or restart while the node was part way through
//     its list ends the round with the restart verdict and a fresh state
//     (the attester asks again from entry 0);
//  3. the list starts where the challenge said (evidence.offset) and decodes
//     (evidence.list); the firmware log, if sent, decodes
//     (evidence.event_log) and replays to the quoted PCR 0-9
//     (measured_boot.pcr_mismatch);
//  4. the runtime policy judges every new entry and the list replays to the
//     quoted PCRs (package verify's ids: ima.validation.*, ima.pcr_mismatch, ...).
//
// Failures of step 1 and 2 are not the node's word (anyone can send bytes):
// Outcome.Authentic is false for them.
package appraise
