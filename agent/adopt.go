package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/imago-ima/imago/adopt"
)

// This file runs the adoption of the kernel's TPM-bypass list (issue 11,
// package adopt) inside the agent: Config.Adopt starts an adopt.Adopter with
// the agent's lifecycle, and the agent's own list records each adoption.

// adoptStateFile in Config.StateDir keeps, for this boot, how many of the
// kernel's entries were listed when the TPM appeared.
const adoptStateFile = "adopt.json"

// startAdoption starts the adopter when Config.Adopt is set; it stops with
// the agent (Close, or ctx). A refusal is logged and shown in Status, and
// the agent carries on; any other end of adoption (a kernel list that
// cannot be read, the agent's own list failing to record the adoption)
// stops the agent, as every component's death does.
func (a *Agent) startAdoption(ctx context.Context) error {
	if !a.cfg.Adopt {
		return nil
	}
	ad, err := adopt.New(adopt.Config{
		SecurityFS: a.cfg.SecurityFS,
		TPM:        a.cfg.TPM,
		Interval:   a.cfg.AdoptInterval,
		Reserved:   []int{int(a.pcr)},
		StateFile:  filepath.Join(a.cfg.StateDir, adoptStateFile),
		BootIDFile: a.cfg.BootIDFile,
		Logger:     a.log.With("component", "adopt"),
		OnAdopt:    a.recordAdoption,
	})
	if err != nil {
		return err
	}
	a.adopter = ad
	actx, cancel := context.WithCancel(ctx)
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		select {
		case <-a.stop:
		case <-actx.Done():
		}
		cancel()
	}()
	go func() {
		defer a.wg.Done()
		defer cancel()
		if err := ad.Run(actx); err != nil && !errors.Is(err, adopt.ErrRefused) {
			a.setFatal(fmt.Errorf("agent: adopting the kernel's list: %w", err))
		}
	}()
	return nil
}

// recordAdoption is the adopter's OnAdopt: before the first of the kernel's
// entries is extended, the agent's own list gets its late boot aggregate
// from the TPM that appeared (the late stage, if it has not run yet) and
// then the adoption record, an ima-buf entry named adopt.RecordName.
func (a *Agent) recordAdoption(ctx context.Context, r adopt.Record) error {
	for a.State() == Deferred {
		err := a.Late(TriggerTPMAppeared)
		if err == nil {
			break
		}
		if !errors.Is(err, errNotYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.cfg.PollInterval):
		}
	}
	_, hash, pcrIdx := a.params()
	e, err := r.Entry(hash, a.order, pcrIdx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == Failed {
		return a.failErr
	}
	if err := a.commit(e); err != nil {
		return err
	}
	a.log.Info("listed the adoption of the kernel's list", "entry", adopt.RecordName, "record", string(r.Format()))
	return nil
}

// adoptionStatus is the adopter's status, nil without Config.Adopt.
func (a *Agent) adoptionStatus() *adopt.Status {
	if a.adopter == nil {
		return nil
	}
	s := a.adopter.Status()
	return &s
}
