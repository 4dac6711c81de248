package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
)

// firstStage runs init_ima(late=false). Called with a.mu held.
func (a *Agent) firstStage(ctx context.Context) error {
	var t TPM
	if a.tpmOn && !a.cfg.InitLate {
		var err error
		if t, err = a.open(); err != nil {
			return err
		}
	}
	d := FirstStage(a.tpmOn, a.cfg.InitLate, t != nil)
	a.logDecision(d, "first stage")
	switch d.Action {
	case Defer:
		a.update(func() { a.state = Deferred })
		a.notify("STATUS=deferred: waiting for the TPM")
		a.wg.Add(1)
		go a.watch(ctx)
		return nil
	default:
		return a.initialise(d, t)
	}
}

func (a *Agent) logDecision(d Decision, stage string) {
	if d.Log != "" {
		a.log.Info(d.Log, "stage", stage)
	}
	if d.Action == Defer && d.Log == "" {
		a.log.Info("initialisation deferred to the late stage (--init late)", "stage", stage)
	}
}

// open opens the TPM: nil, nil when none is there now. Errors that no
// waiting can cure (a bad URI, the simulator not built in) are returned; any
// other failure to open (a timeout, a TPM that answers garbage) counts as no
// TPM, as tpm_default_chip finds no chip: the staged start then waits or
// goes to bypass, and says why.
func (a *Agent) open() (TPM, error) {
	t, err := a.cfg.Open(a.cfg.TPM)
	switch {
	case err == nil:
		return t, nil
	case errors.Is(err, a.cfg.ErrNoTPM):
		a.log.Debug("no TPM", "tpm", a.cfg.TPM, "err", err)
		return nil, nil
	case errors.Is(err, tpm.ErrBadURI), errors.Is(err, tpm.ErrSimulatorNotBuilt),
		errors.Is(err, tpm.ErrSimulatorInUse), errors.Is(err, tpm.ErrDisabled):
		return nil, err
	}
	a.log.Warn("the TPM did not open; counting it as not there", "tpm", a.cfg.TPM, "err", err)
	return nil, nil
}

// watch runs the late stage on whichever comes first: the TPM appears, the
// wait expires (or there is no TPM to wait for), ctx is done or Close.
func (a *Agent) watch(ctx context.Context) {
	defer a.wg.Done()
	if !a.tpmOn {
		a.lateOrFatal(TriggerNoTPM)
		return
	}
	timer := time.NewTimer(a.cfg.TPMWait)
	defer timer.Stop()
	tick := time.NewTicker(a.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.stop:
			return
		case <-timer.C:
			a.lateOrFatal(TriggerWaitExpired)
			return
		case <-tick.C:
			if a.State() != Deferred {
				return
			}
			if !a.cfg.Available(a.cfg.TPM) {
				continue
			}
			if err := a.Late(TriggerTPMAppeared); err == nil || !errors.Is(err, errNotYet) {
				if err != nil {
					a.setFatal(err)
				}
				return
			}
		}
	}
}

func (a *Agent) lateOrFatal(tr Trigger) {
	if err := a.Late(tr); err != nil {
		a.setFatal(err)
	}
}

// setFatal ends Serve with err: the agent stops, and says why.
func (a *Agent) setFatal(err error) {
	select {
	case a.fatal <- err:
	default:
	}
}

// errNotYet: the TPM looked present but did not open; keep waiting.
var errNotYet = errors.New("agent: TPM not ready yet")

// Late runs the late stage (init_ima(late=true)) now: nothing if already
// initialised; otherwise open the TPM and initialise with it, or in bypass,
// naming the aggregate boot_aggregate_late.
func (a *Agent) Late(tr Trigger) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if LateStage(a.state, a.tpmOn, false).Action == Nothing {
		return nil
	}
	var t TPM
	if a.tpmOn {
		var err error
		t, err = a.open()
		if err != nil {
			return err
		}
		if t == nil && tr == TriggerTPMAppeared {
			return errNotYet
		}
	}
	d := LateStage(a.state, a.tpmOn, t != nil)
	a.log.Info("late stage", "trigger", string(tr))
	a.logDecision(d, "late stage")
	return a.initialise(d, t)
}

// initialise is ima_init_core with init_ima's default-hash retry.
func (a *Agent) initialise(d Decision, t TPM) error {
	err := a.initCore(d, t, a.cfg.hash)
	if errors.Is(err, errHashUnavailable) && a.cfg.hash != DefaultHash {
		a.log.Warn(fmt.Sprintf("Allocating %s failed, going to use default hash algorithm %s", a.cfg.hash, DefaultHash))
		err = a.initCore(d, t, DefaultHash)
	}
	if err != nil {
		if t != nil {
			t.Close()
		}
		return err
	}
	a.notify(fmt.Sprintf("STATUS=%s (%s)", a.state, a.name))
	return nil
}

// initCore lists the aggregate and the queued measurements. Called with
// a.mu held.
func (a *Agent) initCore(d Decision, t TPM, hash ima.HashAlg) error {
	if hash.New() == nil {
		return fmt.Errorf("%w: %s", errHashUnavailable, hash)
	}
	st := &persisted{Version: 1, BootID: a.bootID, Aggregate: d.Name, Hash: hash.String(),
		Template: a.tmpl.Name, PCR: int(a.pcr), TPM: a.cfg.TPM, Mode: modeBypass}
	var (
		banks []BankInfo
		set   pcr.Set
		known []pcr.Bank
		clock tpm.ClockInfo
	)
	if d.Action == InitTPM {
		st.Mode = modeTPM
		c0, err := t.ReadClock()
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		// A guard an earlier run left loaded (killed, on a TPM without a
		// resource manager) takes one of the TPM's few session slots.
		a.flushStaleGuard(t, c0)
		// The guard before the PCRs are read: a reset from here on makes
		// the aggregate's extend fail rather than go into a TPM whose
		// PCRs were not read.
		if err := a.startGuard(t); err != nil {
			return err
		}
		if clock, err = t.ReadClock(); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		st.ResetCount = &clock.ResetCount
		bs, err := t.Banks()
		if err != nil {
			return fmt.Errorf("agent: TPM banks: %w", err)
		}
		var all []pcr.Bank
		for _, b := range bs {
			n, err := t.DigestSize(b)
			if err != nil {
				return fmt.Errorf("agent: TPM bank %s: %w", b, err)
			}
			banks = append(banks, BankInfo{Bank: b, Size: n})
			st.Banks = append(st.Banks, b.String())
			st.Sizes = append(st.Sizes, n)
			all = append(all, b)
			if b.Known() {
				known = append(known, b)
			} else {
				a.log.Warn("PCR bank with an algorithm imago cannot compute: extended with the padded SHA-1 digest (ima-spec.md §4.3)", "bank", b.String())
			}
		}
		if len(banks) == 0 {
			return errors.New("agent: the TPM has no allocated PCR bank")
		}
		idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		if !slices.Contains(idx, int(a.pcr)) {
			idx = append(idx, int(a.pcr))
		}
		if set, err = t.ReadPCRs(all, idx); err != nil {
			return fmt.Errorf("agent: reading PCRs for the boot aggregate: %w", err)
		}
		st.Base = make(pcr.Set)
		for _, b := range banks {
			v, ok := set.Get(b.Bank, int(a.pcr))
			if !ok {
				return fmt.Errorf("agent: PCR %d of bank %s not read", a.pcr, b.Bank)
			}
			st.Base.Put(b.Bank, int(a.pcr), v)
			if !isZero(v) {
				a.log.Warn("the PCR is not zero before the boot aggregate: verifiers that replay from zero will not match", "pcr", a.pcr, "bank", b.Bank.String())
			}
		}
	}
	agg, err := computeAggregate(set, known, hash)
	if err != nil {
		return err
	}
	if set != nil {
		if _, ok := aggregateBank(known, hash); !ok {
			a.log.Warn("No suitable TPM algorithm for boot aggregate")
		}
	}
	ev := &event{Name: d.Name, Alg: agg.Alg, Digest: agg.Digest, D: agg.D}
	e, err := buildEntry(a.tmpl, ev, a.pcr, a.order)
	if err != nil {
		return err
	}

	// Persist the decision, then list the aggregate. A crash in between
	// leaves a state file and an empty list, which a restart undoes.
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := journal.WriteFileAtomic(filepath.Join(a.cfg.StateDir, stateFile), append(data, '\n'), 0o600); err != nil {
		return err
	}
	if a.list, err = journal.Open(filepath.Join(a.cfg.StateDir, listFile)); err != nil {
		return err
	}
	if a.list.Size() != 0 {
		return fmt.Errorf("agent: %s is not empty at initialisation", a.list.Path())
	}
	a.base = st.Base
	a.reset, a.restart = clock.ResetCount, clock.RestartCount
	a.expected = a.replay(nil)
	a.update(func() { a.hash, a.name, a.banks, a.entries = hash, d.Name, banks, 0 })
	state := Bypass
	if d.Action == InitTPM {
		a.tpm, state = t, Initialised
	}
	if a.exp, err = newExports(a.cfg.RuntimeDir, exportBanks(banks), a.order, nil); err != nil {
		return err
	}
	a.log.Info("initialised", "aggregate", d.Name, "state", state.String(), "hash", hash.String(),
		"template", a.tmpl.Name, "pcr", a.pcr, "banks", bankNames(banks), "aggregate_digest", fmt.Sprintf("%s:%x", agg.Alg, agg.Digest))
	if err := a.commit(e); err != nil {
		return err
	}
	a.dup[a.dupKey(e)] = struct{}{}
	if err := a.drainPending(0); err != nil {
		return err
	}
	// Measurements are taken (and the state shown) once the queue is in.
	a.update(func() { a.state = state })
	return nil
}
