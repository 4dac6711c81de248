package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
)

// recoveryHelp is the way out of the failed state, in every failure's
// message (README: "When the agent fails").
const recoveryHelp = "nothing more is listed or extended. To recover: reboot (the next boot starts a new list and keeps this one " +
	"in <state-dir>/previous/<boot id>/), or stop the agent, move the state directory %s aside (keep it: it is the record of " +
	"what ran) and start it again: a new list begins, with a boot aggregate of the TPM's PCRs as they are now"

// commit lists e: it is appended to the list and made durable, added to
// the exports and extended into the TPM, in that order (the kernel, too,
// adds an entry to its list before extending). An error means nothing was
// committed, unless the agent failed (an extend whose outcome the TPM can
// no longer tell): then the entry stays in the list, as it may be in the
// TPM. Called with a.mu held.
func (a *Agent) commit(e *ima.Entry) error {
	rec, err := appendBinary(nil, e, e.Digest, a.order)
	if err != nil {
		return err
	}
	if err := a.freshExports(); err != nil {
		return errorf(CodeNotCommitted, "agent: the exports in %s are not up to date (%w): nothing was committed", a.cfg.RuntimeDir, err)
	}
	var digests map[pcr.Bank][]byte
	if a.tpm != nil {
		digests = bankDigests(e, e.Digest, a.banks)
	}
	t0 := time.Now()
	size := a.list.Size()
	if err := a.list.Append(rec); err != nil {
		if errors.Is(err, journal.ErrBroken) {
			return a.fail(fmt.Errorf("agent: the list could not be written or cut back: %w", err))
		}
		return errorf(CodeNotCommitted, "agent: appending to the list: %w: nothing was committed", err)
	}
	t1 := time.Now()
	mark := a.exp.mark()
	if err := a.exp.append(e, digests); err != nil {
		a.exp.rollback(mark)
		a.update(func() { a.expErr = a.exp.stale })
		if uerr := a.unappend(size); uerr != nil {
			return uerr
		}
		return errorf(CodeNotCommitted, "agent: updating the exports in %s: %w: nothing was committed", a.cfg.RuntimeDir, err)
	}
	t2 := time.Now()
	if a.tpm != nil {
		done, err := a.extend(int(e.PCR), digests)
		if err != nil {
			if !done {
				a.exp.rollback(mark)
				a.update(func() { a.expErr = a.exp.stale })
				if uerr := a.unappend(size); uerr != nil {
					return uerr
				}
			}
			return err
		}
	}
	t3 := time.Now()
	a.update(func() { a.entries++ })
	a.tmu.Lock()
	a.tm.Append += t1.Sub(t0)
	a.tm.Export += t2.Sub(t1)
	a.tm.Extend += t3.Sub(t2)
	a.tm.Committed++
	a.tmu.Unlock()
	return nil
}

// unappend cuts the list back to size after a failed commit; if it cannot
// be, the agent fails (the list holds an entry nothing else has).
func (a *Agent) unappend(size int64) error {
	if err := a.list.Truncate(size); err != nil {
		return a.fail(fmt.Errorf("agent: a failed entry could not be cut from the list: %w", err))
	}
	return nil
}

// fail puts the agent in the failed state for err (a *codeError with
// CodeFailed, naming the way out) and returns that error. Status shows it,
// every measurement is answered with it, and the gate's measurements fail
// (answered as --gate-fail says for errors). Called with a.mu held.
func (a *Agent) fail(err error) error {
	ferr := &codeError{code: CodeFailed, msg: err.Error() + "; " + fmt.Sprintf(recoveryHelp, a.cfg.StateDir), err: err}
	a.update(func() { a.state, a.failErr = Failed, ferr })
	a.log.Error("agent failed", "err", ferr)
	a.notify("STATUS=failed: " + err.Error())
	return ferr
}

// extend extends digests into PCR idx under the guard session. When the
// extend fails, the TPM itself is asked what happened (checkInStep): the
// extend was not done and the TPM is the one the list was extended into
// (a session flushed by someone, a TPM resumed) → a new guard, and once
// more; it was done → fine; the TPM was reset or replaced, or does not
// answer → the agent fails. done reports whether the TPM holds the extend
// (or may: an outcome that cannot be known counts as done, and the entry
// stays in the list). Called with a.mu held.
func (a *Agent) extend(idx int, digests map[pcr.Bank][]byte) (done bool, err error) {
	for attempt := 0; ; attempt++ {
		err := a.tpm.Extend(idx, digests)
		if err == nil {
			a.expect(idx, digests)
			return true, nil
		}
		a.log.Warn("TPM extend failed; asking the TPM what happened", "pcr", idx, "err", err)
		notRun := tpm.NotExecuted(err)
		st, cerr := a.checkInStep(idx, digests)
		switch {
		case cerr != nil:
			return !notRun, a.fail(cerr)
		case st == extendDone:
			a.expect(idx, digests)
			if gerr := a.startGuard(a.tpm); gerr != nil {
				return true, a.fail(gerr)
			}
			return true, nil
		case attempt > 0:
			return false, errorf(CodeNotCommitted, "agent: the TPM refused the extend twice (%w): nothing was committed", err)
		}
		if gerr := a.startGuard(a.tpm); gerr != nil {
			return false, a.fail(gerr)
		}
	}
}

// Outcomes of an extend, as the TPM's PCRs tell it.
const (
	extendNotDone = iota
	extendDone
)

// checkInStep asks the TPM whether it is still the one the list was
// extended into, and whether the extend of digests into PCR idx was done:
// the reset count must be the one recorded, and PCR idx must hold the
// list's value before the extend (not done) or after it (done), in every
// bank imago can compute. Anything else is an error wrapping ErrTPMReset.
func (a *Agent) checkInStep(idx int, digests map[pcr.Bank][]byte) (int, error) {
	clock, err := a.tpm.ReadClock()
	if err != nil {
		return 0, fmt.Errorf("agent: the TPM does not answer (%v): whether the last entry was extended cannot be known; it stays in the list", err)
	}
	if clock.ResetCount != a.reset {
		return 0, fmt.Errorf("%w (its reset count went from %d to %d): its PCRs no longer hold the list", ErrTPMReset, a.reset, clock.ResetCount)
	}
	if clock.RestartCount != a.restart {
		// A TPM Restart or Resume (suspend to RAM) keeps the PCRs: the
		// read-back below decides.
		a.log.Info("the TPM was restarted or resumed", "restart_count_was", a.restart, "restart_count", clock.RestartCount)
		a.restart = clock.RestartCount
	}
	var known []pcr.Bank
	for _, b := range a.banks {
		if b.Bank.Known() {
			known = append(known, b.Bank)
		}
	}
	if len(known) == 0 {
		return extendNotDone, nil // nothing to compare: the reset count stands
	}
	got, err := a.tpm.ReadPCRs(known, []int{idx})
	if err != nil {
		return 0, fmt.Errorf("agent: the TPM does not answer (%v): whether the last entry was extended cannot be known; it stays in the list", err)
	}
	before, after := true, true
	for _, b := range known {
		g, _ := got.Get(b, idx)
		w := a.expectedPCR(b, idx)
		before = before && bytes.Equal(g, w)
		after = after && bytes.Equal(g, pcr.Extend(b, w, digests[b]))
	}
	switch {
	case before:
		return extendNotDone, nil
	case after:
		return extendDone, nil
	}
	return 0, fmt.Errorf("%w or another process extended PCR %d: it holds neither the list's value nor the value with the last entry", ErrTPMReset, idx)
}

// expectedPCR is the value PCR idx of bank b has if the TPM is in step
// with the list.
func (a *Agent) expectedPCR(b pcr.Bank, idx int) []byte {
	if v, ok := a.expected.Get(b, idx); ok {
		return v
	}
	return pcr.Zero(b)
}

// expect records an extend in a.expected.
func (a *Agent) expect(idx int, digests map[pcr.Bank][]byte) {
	for b, d := range digests {
		if b.Known() {
			a.expected.Put(b, idx, pcr.Extend(b, a.expectedPCR(b, idx), d))
		}
	}
}

// replay returns the PCRs the list's entries extend, from the base (the
// agent's PCR as read at initialisation; zeros for other PCRs), in every
// bank imago can compute.
func (a *Agent) replay(entries []*ima.Entry) pcr.Set {
	s := make(pcr.Set)
	for _, b := range a.base.Banks() {
		if !b.Known() {
			continue // cannot be replayed; not compared
		}
		for _, i := range a.base.Indexes(b) {
			v, _ := a.base.Get(b, i)
			s.Put(b, i, v)
		}
	}
	for _, e := range entries {
		for b, d := range bankDigests(e, e.Digest, a.banks) {
			if !b.Known() {
				continue
			}
			v, ok := s.Get(b, int(e.PCR))
			if !ok {
				v = pcr.Zero(b)
			}
			s.Put(b, int(e.PCR), pcr.Extend(b, v, d))
		}
	}
	return s
}

// guardRecord is the tpm-session file: the guard session a running agent
// holds, so that the next start can flush it if the agent died without
// doing so (a session outlives its process on a TPM without a resource
// manager).
type guardRecord struct {
	Handle     uint32 `json:"handle"`
	ResetCount uint32 `json:"reset_count"`
}

// startGuard starts a new guard session on t and records it.
func (a *Agent) startGuard(t TPM) error {
	h, err := t.StartGuard()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	clock, err := t.ReadClock()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	data, _ := json.Marshal(guardRecord{Handle: h, ResetCount: clock.ResetCount})
	return journal.WriteFileAtomic(filepath.Join(a.cfg.StateDir, sessionFile), append(data, '\n'), 0o600)
}

// flushStaleGuard flushes the guard session a previous run left on t, if
// the TPM was not reset since (after a reset the handle may be another
// client's).
func (a *Agent) flushStaleGuard(t TPM, clock tpm.ClockInfo) {
	path := filepath.Join(a.cfg.StateDir, sessionFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var g guardRecord
	if json.Unmarshal(data, &g) == nil && g.ResetCount == clock.ResetCount {
		if err := t.FlushSession(g.Handle); err == nil {
			a.log.Info("flushed the guard session of an earlier run", "handle", fmt.Sprintf("%#x", g.Handle))
		}
	}
	os.Remove(path)
}
