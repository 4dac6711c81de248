package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
	"github.com/imago-ima/imago/pcr"
)

// persisted is state.json: what initialisation decided, so that a restart
// carries on the same list the same way. It is checked against the list
// before anything is done with either.
type persisted struct {
	Version   int      `json:"version"`
	BootID    string   `json:"boot_id"`
	Mode      string   `json:"mode"` // modeTPM or modeBypass
	Aggregate string   `json:"aggregate"`
	Hash      string   `json:"hash"`
	Template  string   `json:"template"`
	PCR       int      `json:"pcr"`
	TPM       string   `json:"tpm"`
	Banks     []string `json:"banks,omitempty"`
	Sizes     []int    `json:"sizes,omitempty"`
	// Base is the PCR's value in each bank before the aggregate was
	// extended (zeros unless something else extended it first).
	Base pcr.Set `json:"base,omitempty"`
	// ResetCount is the TPM's reset count when the list began (TPM mode).
	ResetCount *uint32 `json:"reset_count,omitempty"`
}

// Modes of persisted.Mode.
const (
	modeTPM    = "tpm"
	modeBypass = "bypass"
)

// loadState reads state.json: nil if there is none, or if it belongs to an
// earlier boot, in which case the old files are moved to previous/<boot id>/
// (a new boot reset the TPM; that list is evidence, not this boot's list).
func (a *Agent) loadState() (*persisted, error) {
	path := filepath.Join(a.cfg.StateDir, stateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if fi, err := os.Stat(filepath.Join(a.cfg.StateDir, listFile)); err == nil && fi.Size() > 0 {
			return nil, fmt.Errorf("%w: %s has a list but no %s; move the state directory aside to start afresh",
				ErrListMismatch, a.cfg.StateDir, stateFile)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var st persisted
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrListMismatch, path, err)
	}
	if st.BootID == a.bootID {
		return &st, nil
	}
	dir := filepath.Join(a.cfg.StateDir, previousDir, st.BootID)
	if st.BootID == "" || filepath.Base(st.BootID) != st.BootID {
		dir = filepath.Join(a.cfg.StateDir, previousDir, fmt.Sprintf("unknown-%d", time.Now().Unix()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, name := range []string{listFile, pendingFile, stateFile} {
		if name == pendingFile {
			// The open queue is moved by name; reopen it empty.
			a.pending.Close()
		}
		if err := os.Rename(filepath.Join(a.cfg.StateDir, name), filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	os.Remove(filepath.Join(a.cfg.StateDir, sessionFile)) // that TPM was reset: the handle means nothing
	if err := journal.SyncDir(a.cfg.StateDir); err != nil {
		return nil, err
	}
	if a.pending, err = journal.Open(filepath.Join(a.cfg.StateDir, pendingFile)); err != nil {
		return nil, err
	}
	a.log.Info("a list from an earlier boot was moved aside", "boot_id", st.BootID, "to", dir)
	return nil, nil
}

// stateMismatch is an error for a state.json that does not describe the
// list: the agent refuses to start rather than carry on another way (a
// state edited to "bypass" would otherwise stop the TPM checks).
func (a *Agent) stateMismatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s does not describe the list: %s; the files are left as they are. If %s was edited, restore it; "+
		"to start a new list, stop the agent and move %s aside (keep it as evidence)",
		ErrListMismatch, filepath.Join(a.cfg.StateDir, stateFile), fmt.Sprintf(format, args...), stateFile, a.cfg.StateDir)
}

// checkState checks state.json's own consistency and its agreement with the
// list's first entry, the boot aggregate: its name, template and PCR; its
// digest zero in bypass and not zero with a TPM (a TPM's PCRs never hash to
// zeros); and, with a TPM, its algorithm the one the kernel's bank choice
// gives for the hash.
func (a *Agent) checkState(st *persisted, first *ima.Entry) (hash ima.HashAlg, tmpl *ima.Template, banks []BankInfo, err error) {
	if st.Version != 1 {
		return 0, nil, nil, a.stateMismatch("version %d", st.Version)
	}
	hash, err = ima.ParseHashAlg(st.Hash)
	if err != nil || hash.New() == nil {
		return 0, nil, nil, a.stateMismatch("hash %q cannot be computed", st.Hash)
	}
	if tmpl, err = ima.LookupTemplate(st.Template); err != nil {
		return 0, nil, nil, a.stateMismatch("template: %v", err)
	}
	if st.PCR < 0 || st.PCR > 23 {
		return 0, nil, nil, a.stateMismatch("PCR %d", st.PCR)
	}
	if len(st.Banks) != len(st.Sizes) {
		return 0, nil, nil, a.stateMismatch("%d banks and %d sizes", len(st.Banks), len(st.Sizes))
	}
	var known []pcr.Bank
	for i, name := range st.Banks {
		b, err := pcr.ParseBank(name)
		if err != nil || st.Sizes[i] <= 0 || st.Sizes[i] > 64 || b.Known() && st.Sizes[i] != b.Size() {
			return 0, nil, nil, a.stateMismatch("bank %q of %d bytes", name, st.Sizes[i])
		}
		banks = append(banks, BankInfo{Bank: b, Size: st.Sizes[i]})
		if b.Known() {
			known = append(known, b)
		}
	}
	switch st.Mode {
	case modeTPM:
		if len(banks) == 0 || st.Base == nil {
			return 0, nil, nil, a.stateMismatch("mode tpm without banks or base")
		}
		for _, b := range known {
			if v, ok := st.Base.Get(b, st.PCR); !ok || len(v) != b.Size() {
				return 0, nil, nil, a.stateMismatch("no base value for bank %s PCR %d", b, st.PCR)
			}
		}
	case modeBypass:
		if len(banks) != 0 || st.Base != nil || st.ResetCount != nil {
			return 0, nil, nil, a.stateMismatch("mode bypass with TPM banks, base or reset count")
		}
	default:
		return 0, nil, nil, a.stateMismatch("mode %q (want %s or %s)", st.Mode, modeTPM, modeBypass)
	}
	if name := aggregateName(first); name != st.Aggregate || (name != BootAggregate && name != BootAggregateLate) {
		return 0, nil, nil, a.stateMismatch("the first entry is %q, the state names the aggregate %q", name, st.Aggregate)
	}
	if first.Template != tmpl.Name || int(first.PCR) != st.PCR {
		return 0, nil, nil, a.stateMismatch("the aggregate is listed with template %q in PCR %d, the state says %q in PCR %d",
			first.Template, first.PCR, tmpl.Name, st.PCR)
	}
	alg, digest, ok := aggregateDigest(first)
	if !ok {
		return hash, tmpl, banks, nil // a template without a digest field: nothing more to compare
	}
	switch zero := isZero(digest); {
	case st.Mode == modeBypass && !zero:
		return 0, nil, nil, a.stateMismatch("mode bypass, but the boot aggregate is a TPM's (%s:%x)", alg, digest)
	case st.Mode == modeTPM && zero:
		return 0, nil, nil, a.stateMismatch("mode tpm, but the boot aggregate is zeros (TPM-bypass)")
	}
	want := hash
	if st.Mode == modeTPM {
		if b, ok := aggregateBank(known, hash); ok {
			want, _ = ima.HashAlgForBank(b)
		}
	}
	if alg != 0 && alg != want && !tmpl.IsLegacy() {
		return 0, nil, nil, a.stateMismatch("hash %s, but the boot aggregate is %s (the kernel's bank choice gives %s)", hash, alg, want)
	}
	return hash, tmpl, banks, nil
}

// aggregateName is the name field of an entry (n or n-ng).
func aggregateName(e *ima.Entry) string {
	for _, f := range e.Fields {
		if f.ID == ima.FieldNNG || f.ID == ima.FieldN {
			return string(bytes.TrimRight(f.Data, "\x00"))
		}
	}
	return ""
}

// aggregateDigest returns the aggregate entry's digest: the d-ng or
// d-ngv2 field's algorithm and value, else the legacy d field (alg 0).
func aggregateDigest(e *ima.Entry) (ima.HashAlg, []byte, bool) {
	for _, f := range e.Fields {
		switch f.ID {
		case ima.FieldDNG, ima.FieldDNGv2:
			d, err := ima.ParseDigestField(f.ID, f.Data)
			if err != nil {
				return 0, nil, false
			}
			return d.Alg, d.Sum, true
		}
	}
	for _, f := range e.Fields {
		if f.ID == ima.FieldD {
			return 0, f.Data, true
		}
	}
	return 0, nil, false
}

// recoverList carries on the list of an earlier run of this boot. It returns
// done=false when there is nothing to carry on (a crash before the aggregate
// was listed), so the first stage runs again. Called with a.mu held.
func (a *Agent) recoverList(st *persisted) (done bool, err error) {
	if a.list, err = journal.Open(filepath.Join(a.cfg.StateDir, listFile)); err != nil {
		return false, err
	}
	sc, err := a.scan(a.list, st.Mode == modeTPM)
	if err != nil {
		return false, err
	}
	entries := sc.entries
	if len(entries) == 0 && sc.good == 0 {
		a.log.Info("the previous run stopped before listing the aggregate; starting again")
		if err := a.cutTorn(a.list, sc); err != nil {
			return false, err
		}
		a.list.Close()
		a.list = nil
		return false, os.Remove(filepath.Join(a.cfg.StateDir, stateFile))
	}
	hash, tmpl, banks, err := a.checkState(st, entries[0])
	if err != nil {
		return false, err
	}
	if st.Hash != a.cfg.hash.String() || st.Template != a.tmpl.Name || st.PCR != int(a.pcr) {
		a.log.Warn("carrying on the list with the settings it was started with",
			"hash", st.Hash, "template", st.Template, "pcr", st.PCR)
	}
	a.base = st.Base

	// Queued measurements: the list holds the first k of them if a drain
	// was cut short.
	queued, err := a.readQueue()
	if err != nil {
		return false, err
	}
	k := len(entries) - 1
	if len(queued) > 0 {
		k = min(k, len(queued))
		for i := 0; i < k; i++ {
			if !bytes.Equal(entries[i+1].Data, queued[i].Data) {
				return false, fmt.Errorf("%w: entry %d differs from queued measurement %d", ErrListMismatch, i+1, i)
			}
		}
	}

	var t TPM
	state := Bypass
	a.update(func() { a.hash, a.tmpl, a.pcr, a.name, a.banks = hash, tmpl, uint32(st.PCR), st.Aggregate, banks })
	if st.Mode == modeTPM {
		if t, err = a.checkTPM(entries, st, sc.torn); err != nil {
			return false, err
		}
		state = Initialised
	} else {
		a.expected = a.replay(entries)
	}
	// Only now that the TPM agrees is a torn final record cut.
	if err := a.cutTorn(a.list, sc); err != nil {
		if t != nil {
			t.Close()
		}
		return false, err
	}
	a.tpm = t
	if a.exp, err = newExports(a.cfg.RuntimeDir, exportBanks(banks), a.order, a.listEntries()); err != nil {
		return false, err
	}
	for _, e := range entries {
		a.dup[a.dupKey(e)] = struct{}{}
	}
	a.update(func() { a.entries = len(entries) })
	if len(queued) > 0 {
		if err := a.drainPending(k); err != nil {
			return false, err
		}
	}
	a.update(func() { a.state = state })
	a.log.Info("recovered the list", "entries", a.entries, "state", a.state.String(), "aggregate", a.name)
	a.notify(fmt.Sprintf("STATUS=%s (%s, recovered %d entries)", a.state, a.name, a.entries))
	return true, nil
}

// checkTPM opens the TPM, starts a guard, and compares the list with the
// TPM in every bank: the reset count must be the list's, and the PCRs
// equal to the list's replay (carry on), or exactly one entry behind (a
// crash between the fsync and the extend: extend that entry). Anything else
// is ErrListMismatch. torn says a torn final record follows the entries: it
// was never extended, so the TPM must match the entries exactly.
func (a *Agent) checkTPM(entries []*ima.Entry, st *persisted, torn bool) (TPM, error) {
	t, err := a.open()
	deadline := time.Now().Add(a.cfg.TPMWait)
	for err == nil && t == nil && time.Now().Before(deadline) {
		time.Sleep(a.cfg.PollInterval)
		t, err = a.open()
	}
	if err != nil {
		return nil, fmt.Errorf("agent: the list was extended into a TPM, which does not open: %w", err)
	}
	if t == nil {
		return nil, fmt.Errorf("%w: the list was extended into TPM %s, which is not there", ErrListMismatch, a.cfg.TPM)
	}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	clock, err := t.ReadClock()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.flushStaleGuard(t, clock)
	if err := a.startGuard(t); err != nil {
		return nil, err
	}
	mismatch := func(why string, args ...any) error {
		return fmt.Errorf("%w: %s; the TPM was reset or the list was cut or changed. Nothing more is measured into it. "+
			"To start a new list, stop the agent and move %s aside (keep it as evidence)",
			ErrListMismatch, fmt.Sprintf(why, args...), a.cfg.StateDir)
	}
	if st.ResetCount != nil && *st.ResetCount != clock.ResetCount {
		return nil, mismatch("the TPM's reset count is %d, the list began at %d", clock.ResetCount, *st.ResetCount)
	}
	a.reset, a.restart = clock.ResetCount, clock.RestartCount
	bs, err := t.Banks()
	if err != nil {
		return nil, fmt.Errorf("agent: TPM banks: %w", err)
	}
	var all []pcr.Bank
	for _, b := range a.banks {
		all = append(all, b.Bank)
	}
	if !slices.Equal(bs, all) {
		return nil, mismatch("the TPM's banks are %v, the list was extended into %v", bs, all)
	}
	var idx []int
	for _, e := range entries {
		if !slices.Contains(idx, int(e.PCR)) {
			idx = append(idx, int(e.PCR))
		}
	}
	got, err := t.ReadPCRs(all, idx)
	if err != nil {
		return nil, fmt.Errorf("agent: reading PCRs: %w", err)
	}
	full := a.replay(entries)
	if diffSets(full, got) == "" {
		a.expected, ok = full, true
		return t, nil
	}
	if torn {
		return nil, mismatch("%d entries replay to %s, the TPM has %s, and a damaged record follows them", len(entries), formatSet(full), formatSet(got))
	}
	if diffSets(a.replay(entries[:len(entries)-1]), got) == "" {
		last := entries[len(entries)-1]
		a.log.Warn("the list is one entry ahead of the TPM (a crash between writing and extending): extending it", "entry", len(entries)-1)
		if err := t.Extend(int(last.PCR), bankDigests(last, last.Digest, a.banks)); err != nil {
			return nil, fmt.Errorf("agent: extending the last entry: %w", err)
		}
		a.expected, ok = full, true
		return t, nil
	}
	return nil, mismatch("%d entries replay to %s, the TPM has %s", len(entries), formatSet(full), formatSet(got))
}

func diffSets(want, got pcr.Set) string {
	var diff string
	for _, b := range want.Banks() {
		for _, i := range want.Indexes(b) {
			w, _ := want.Get(b, i)
			g, ok := got.Get(b, i)
			if !ok || !bytes.Equal(w, g) {
				diff += fmt.Sprintf(" %s PCR %d", b, i)
			}
		}
	}
	return diff
}

func formatSet(s pcr.Set) string {
	out, _ := json.Marshal(s)
	return string(out)
}
