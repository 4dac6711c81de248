// Package replay folds an IMA measurement list into PCR values, one value
// per (bank, PCR index) that the list's entries name, and checks the result
// against PCRs read from a TPM.
//
// It follows ima-spec.md §4.3-§4.4 (what each entry extends into each bank),
// §5.2 (violations: a listed all-zero digest extends 0xFF over the bank
// size), §4.4 and §13.3 (a snapshot of the list may run ahead of the PCRs:
// stop at the first prefix that matches) and the pre-5.1 "padded SHA-1"
// variant of §4.4 (the SHA-1 template digest zero-padded to the bank size,
// extended into every bank), which evmctl's ima_measurement also accepts.
//
// The package is pure: it reads entries from an iterator
// (iter.Seq2[*ima.Entry, error], e.g. ima.Reader.All) and returns values. It
// streams: memory does not grow with the list. Template digests and the
// extend chains of the banks run on separate goroutines over batches of
// entries, so a two-bank replay uses two cores.
package replay
