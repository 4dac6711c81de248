// Package adopt adopts the kernel's TPM-bypass measurement list into a TPM
// that appears after IMA's init, from user space: the repair the seed patch
// (../shared/reference/seed-ima-late-tpm.txt) makes in the kernel, for
// kernels that do not have it.
//
// A kernel whose TPM driver probes after IMA's init (a TPM driver built as a
// module, an SPI or I2C TPM behind a late controller) logs "No TPM chip
// found, activating TPM-bypass!" and keeps its list for the whole boot with a
// zero boot aggregate, extending nothing (ima-spec.md §6.4, §9.1). When a TPM
// appears, an Adopter extends every entry of that list into the PCR it names
// (10, CONFIG_IMA_MEASURE_PCR_IDX) exactly as the kernel would have, and keeps
// following the list as the kernel appends to it.
//
// # What is extended (ima-spec.md §4.3, §4.4, §5.2)
//
// Entry by entry, in list order, one TPM2_PCR_Extend per entry carrying a
// digest for every allocated bank: the bank's hash of the entry's template
// data; for a bank imago cannot hash, the SHA-1 template digest zero-padded
// to the bank's size; for a violation (all-zero listed digest), 0xFF over the
// bank's size. The kernel's list then replays to the TPM in every bank, so
// evmctl ima_measurement and `imago log check` accept it.
//
// # Only a bypass list, only a TPM that holds a prefix of it
//
// The list must be in securityfs and begin with a boot aggregate whose
// digest is all zeros (CheckFirst). When the TPM appears, its PCRs must hold
// the replay of a prefix of the list in every bank: all zeros (nothing
// adopted yet), or the first k entries (an adopter was stopped, or killed
// between two extends), found by replaying the list's prefixes
// (FindPrefix, over replay.Check). Anything else is a *RefusedError saying
// which, and the TPM is left alone. While following, the TPM's PCRs are read
// and compared with what adoption extended before every batch of extends:
// something else extending PCR 10 (or a TPM reset) stops adoption.
//
// # Following
//
// The binary list is read from the byte offset reached (an append-only
// seq_file read continues where it stopped), and runtime_measurements_count
// is polled every Config.Interval (1 s by default): the TPM lags the list by
// about that much. Status reports the entries listed and adopted, the lag,
// and how many entries were listed when the TPM appeared. An exclusive flock
// on the securityfs list keeps two adopters from extending the same entries.
//
// # Trust
//
// Entries listed before the TPM appeared are only as trustworthy as the
// system was until then: whoever controlled the machine before the TPM
// appeared could have shaped that part of the list, and adoption cannot tell.
// The kernel's boot aggregate stays zeros; the real one, from the TPM's PCR
// 0-9 when it appeared, is in the Record the agent lists. After adoption the
// TPM lags the list by up to the follow interval. And root can always extend
// a PCR: adoption (like the kernel) extends into a PCR that any root process
// may extend too; what makes the result trustworthy is a verifier that
// replays the list against a quote.
package adopt
