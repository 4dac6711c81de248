// Package journal keeps append-only files durably, for the measurement agent's
// list and its queue of measurements asked for while the TPM is deferred: an
// Append returns only once the bytes are on stable storage (write, then
// fdatasync), and a failed Append leaves the file at its previous size. It
// knows nothing of the records' format; the agent parses them with ima.Reader
// and decides what a torn tail is (ima-spec.md §2.3 for the record layout,
// §4.4 for why the list must be written before the extend).
//
// WriteFileAtomic replaces small state files (write to a temporary name,
// fsync, rename, fsync the directory).
package journal
