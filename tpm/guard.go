package tpm

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// ClockInfo is a TPM's TPMS_CLOCK_INFO (TPM 2.0 Part 2 §10.11.1):
// ResetCount grows on every TPM Reset (a TPM2_Startup(CLEAR) after
// _TPM_Init: the PCRs are cleared), RestartCount on every TPM Restart or
// Resume since (PCRs kept). Clock is the TPM's own millisecond count; Safe
// is false when it may have gone backwards (a state not saved before a
// power loss).
type ClockInfo struct {
	Clock                    uint64
	ResetCount, RestartCount uint32
	Safe                     bool
}

// ReadClock returns the TPM's clock information (TPM2_ReadClock, TPM 2.0
// Part 3 §29.1).
func (tp *TPM) ReadClock() (ClockInfo, error) {
	if err := tp.lock(); err != nil {
		return ClockInfo{}, err
	}
	defer tp.mu.Unlock()
	rsp, err := run(tp.t, tpm2.ReadClock{}.Execute)
	if err != nil {
		return ClockInfo{}, fmt.Errorf("tpm: %s: read clock: %w", tp.name, err)
	}
	c := rsp.CurrentTime.ClockInfo
	return ClockInfo{Clock: c.Clock, ResetCount: c.ResetCount, RestartCount: c.RestartCount, Safe: bool(c.Safe)}, nil
}

// ErrGuardLost: the guard session is gone (the TPM was reset or restarted,
// a different TPM answers, or someone flushed the session): the extend was
// not done, and no extend is sent until StartGuard is called again.
var ErrGuardLost = errors.New("tpm: the guard session is gone (TPM reset, a different TPM, or the session flushed)")

// StartGuard starts a guard: an HMAC session (unbound, unsalted, SHA-256,
// TPM 2.0 Part 1 §19.6) that every later Extend is authorized with. A TPM
// forgets its sessions when it is reset (and a different TPM never had
// this one), so an Extend into a TPM that was reset since StartGuard fails
// with the TPM's error and does nothing: the check that the TPM is still
// the one the caller verified is part of the extend itself, atomic, and
// costs no extra command. Once a guard was started, an Extend after the
// guard was lost fails with ErrGuardLost without being sent.
//
// StartGuard flushes the previous guard, if any, and returns the new
// session's handle (for FlushSession after a crash; a session outlives
// its process on a TPM without a resource manager, such as swtpm over
// tcp).
func (tp *TPM) StartGuard() (uint32, error) {
	if err := tp.lock(); err != nil {
		return 0, err
	}
	defer tp.mu.Unlock()
	if tp.guardClose != nil {
		tp.guardClose() // best effort: it may be gone with a reset
	}
	tp.guard, tp.guardClose, tp.guarded = nil, nil, true
	sess, closer, err := tpm2.HMACSession(tp.t, tpm2.TPMAlgSHA256, 16, tpm2.Auth(nil))
	if err != nil {
		return 0, fmt.Errorf("tpm: %s: starting the guard session: %w", tp.name, err)
	}
	tp.guard, tp.guardClose = sess, closer
	return uint32(sess.Handle()), nil
}

// FlushSession flushes a session by handle (TPM2_FlushContext), such as a
// guard a crashed process left loaded. The handle must be an HMAC or
// policy session's.
func (tp *TPM) FlushSession(handle uint32) error {
	if h := tpm2.TPMHandle(handle); h>>24 != 0x02 && h>>24 != 0x03 {
		return fmt.Errorf("tpm: %#x is not a session handle", handle)
	}
	if err := tp.lock(); err != nil {
		return err
	}
	defer tp.mu.Unlock()
	if _, err := run(tp.t, tpm2.FlushContext{FlushHandle: tpm2.TPMHandle(handle)}.Execute); err != nil {
		return fmt.Errorf("tpm: %s: flush session %#x: %w", tp.name, handle, err)
	}
	return nil
}

// NotExecuted reports whether err says the TPM did not run the command:
// the TPM's own answer (a response code), a lost guard, or a socket TPM
// that could not be reached (ErrNoTPM: nothing was sent). Any other error
// (the connection dropped after the command was sent, a timeout) leaves it
// unknown whether the command ran.
func NotExecuted(err error) bool {
	var rc tpm2.TPMRC
	return errors.Is(err, ErrGuardLost) || errors.Is(err, ErrNoTPM) || errors.As(err, &rc)
}

// closeGuard flushes the guard session. tp.mu is held.
func (tp *TPM) closeGuard() {
	if tp.guardClose != nil {
		tp.guardClose()
	}
	tp.guard, tp.guardClose = nil, nil
}
