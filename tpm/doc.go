// Package tpm is imago's edge to a TPM 2.0: it opens a TPM named by a URI
// (auto, a device node, tcp://, unix://, the embedded simulator, or none),
// discovers the allocated PCR banks, reads PCRs and extends one measurement
// into every bank with a single TPM2_PCR_Extend. All commands go through
// google/go-tpm's tpm2 package; this package owns only the transports, the
// device discovery and the error kinds the agent's staged start needs.
//
// # URIs
//
//	auto             the lowest-numbered /dev/tpmrm<N>, else /dev/tpm<N>; never
//	                 assumes N = 0, since a chip that registers late may get any number
//	/dev/...         a TPM character device, through go-tpm's linuxtpm transport
//	tcp://HOST:PORT  a raw TPM command channel, such as swtpm's --server port
//	                 (no Microsoft simulator framing)
//	unix:///PATH     the same over a unix socket (swtpm --server type=unixio)
//	sim              the reference simulator from go-tpm-tools, in-process; needs
//	                 cgo, otherwise Open returns ErrSimulatorNotBuilt
//	none             TPM support switched off: Open returns ErrDisabled
//
// # Errors
//
// Open tells apart "no TPM there now" (ErrNoTPM: auto found no node, a device
// node or unix socket is absent, a tcp connection is refused), "switched off"
// (ErrDisabled), "simulator not built in" (ErrSimulatorNotBuilt), a malformed
// URI (ErrBadURI) and anything else (a TPM that answers garbage, a permission
// problem). Available is the cheap "is it there now" poll for a deferred start.
// TPM response codes stay tpm2.TPMRC values, reachable with errors.Is/As.
//
// # Sockets
//
// swtpm serves one client connection at a time and queues the others. The
// socket transports hold a connection across a burst of commands (connecting
// per command would cost about as much again as the command), hang up after
// 20 ms without a command, and after 200 ms of a steady stream, so other
// clients (`imago tpm pcrread`, tpm2_pcrread, a second agent) get their
// turn. A held connection the peer closed (swtpm restarted) is noticed
// before the next command, which then redials. A command that fails while
// dialling wraps ErrNoTPM and was not delivered; a failure after that may
// or may not have reached the TPM. Commands on one *TPM are serialised.
//
// # Extend rule
//
// Extend sends one TPML_DIGEST_VALUES with a digest for every bank the caller
// gives; the caller computes, per ima-spec.md §4.2-§4.4, the bank's template
// digest or, for a bank whose algorithm the kernel cannot compute, the SHA-1
// digest zero-padded to the bank's size (Bank.Size from Banks, or the width
// ReadPCRs learnt).
package tpm
