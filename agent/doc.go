// Package agent is imago's userspace IMA measurement agent: it measures files
// asked for over a Unix socket, appends kernel-format entries to a durable
// binary list, extends every allocated PCR bank of a TPM, and keeps the
// securityfs-style exports up to date.
//
// # Staged start (seed patch, ima-spec.md §9.2)
//
// Run starts the way the late-TPM patch makes the kernel start. First stage:
// open the TPM; found, initialise with a "boot_aggregate" entry; not found
// while TPM support is on, log "TPM not available, will try later" and defer;
// --tpm none, log "No TPM chip found, activating TPM-bypass!" and initialise
// in bypass at once. Late stage, on whichever comes first of the TPM
// appearing, Config.TPMWait expiring, or a late request (`imago late`): open
// again; found, initialise with the real aggregate; not found, bypass with a
// zero aggregate. Either way the entry is "boot_aggregate_late". InitLate
// (the patch's CONFIG_IMA_INIT_LATE_SYNC form) skips the first stage.
// Initialising with an algorithm that cannot be computed logs "Allocating X
// failed, going to use default hash algorithm Y" and retries with the default
// (ima_main.c init_ima). Unlike the kernel, a measurement asked for while
// deferred is not lost: it is queued durably and listed, in order, right
// after the aggregate.
//
// # Entries, digests, extend (ima-spec.md §3, §4, §6)
//
// The boot aggregate is computed as ima_calc_boot_aggregate does (§6.2: bank
// choice, PCR0-7 for sha1, PCR0-9 otherwise; §6.3: the legacy d field), zeros
// in bypass (§6.4). Each entry is extended into every allocated bank with one
// TPM2_PCR_Extend carrying that bank's template digest; a bank whose hash
// imago cannot compute gets the SHA-1 digest zero-padded (§4.3). Identical
// (template data, PCR) records are listed once (§4.5), and a file unchanged
// since it was measured (same device, inode, size, mtime and ctime; i_version
// is not exposed to user space) is not hashed again.
//
// # Durability and recovery
//
// The list in Config.StateDir is the kernel's binary format (native byte
// order, SHA-1 template digest column). Each entry is appended and
// fdatasynced before the TPM extend, and the client is answered only after
// the extend and the exports. On restart the list is read back: a torn final
// record (never acknowledged) is cut off; then it is replayed and compared
// with the TPM in every bank. Equal: carry on. The list is exactly one entry
// ahead (a crash between fsync and extend): extend that entry and carry on.
// Anything else (TPM reset, file cut or edited) is ErrListMismatch: the agent
// refuses to start rather than pretend. The way out is to move the state
// directory aside (keeping it as evidence) and start afresh; a new boot
// (a different /proc/sys/kernel/random/boot_id) does that by itself, moving
// the old list to <state-dir>/previous/<boot id>/.
//
// # The gate (gate.go, gatepolicy.go)
//
// StartGate (RunGate, `imago agent --watch`) holds execs and opens on the
// watched filesystems (package gate, fanotify permission events) until the
// policy (package policy, ima-spec.md §8) has been evaluated on facts read
// at the edge (internal/fsfacts), the file measured through the event's own
// descriptor, listed, extended and, under an appraise rule, appraised
// against a keyring (package ima/digsig). Cached decisions (once per file
// version) are answered on the gate's reading thread; measurements by its
// workers. ToMToU and open-writers violations are listed as the kernel lists
// them (§5): zero digest, 0xFF extended, counted in the violations export.
// The agent never forks or execs, and its own opens are answered at once.
//
// # Adopting the kernel's list (adopt.go)
//
// Config.Adopt runs package adopt's Adopter beside the agent, with its
// lifecycle: the kernel's TPM-bypass list is extended into the TPM when one
// appears and followed. The agent then always initialises at the late stage
// (boot_aggregate_late from the TPM that appeared) and lists an ima-buf
// entry named adopt.RecordName before the first kernel entry is extended. A
// refusal leaves the agent running; Status carries the adoption's status.
//
// Pure decisions (stage transitions, bank choice, aggregate, per-bank
// digests) are plain functions in decide.go and digests.go; the I/O is in
// agent.go, recover.go, server.go and exports.go.
package agent
