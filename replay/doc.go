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
// (iter.Seq2[*ima.Entry, error], e.g. ima.Reader.All, or ima.ScanList for
// speed) and returns values. It streams: memory does not grow with the list.
// The caller's goroutine copies entries into batches of up to 512; digest
// workers (GOMAXPROCS of them) compute each batch's template digests for
// every bank in parallel and compare the listed ones; one goroutine per bank
// then extends them in list order and, after each entry, compares the PCR
// just extended with its target, if it has one. Check reads the list a
// second time only when a bank needs the padded SHA-1 variant.
package replay
