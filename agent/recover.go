package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
	"github.com/imago-ima/imago/pcr"
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
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("agent: %s: %w", path, err)
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
	if err := journal.SyncDir(a.cfg.StateDir); err != nil {
		return nil, err
	}
	if a.pending, err = journal.Open(filepath.Join(a.cfg.StateDir, pendingFile)); err != nil {
		return nil, err
	}
	a.log.Info("a list from an earlier boot was moved aside", "boot_id", st.BootID, "to", dir)
	return nil, nil
}

// readList reads the list back. A bad record with nothing valid after it is
// a torn final record (it was never acknowledged: the client is answered
// after the fdatasync) and is cut off; the TPM comparison that follows
// catches anything else.
func (a *Agent) readList() ([]*ima.Entry, error) {
	r := ima.NewReader(a.list.ReaderAt(), ima.ReaderOptions{Order: a.order, DigestSize: 20, AllowUnknownTemplates: true})
	var (
		out  []*ima.Entry
		good int64
	)
	for {
		e, err := r.Next()
		if err == io.EOF && good == a.list.Size() {
			return out, nil
		}
		// A lone 0x0a after the last record reads as a clean end
		// (ima.Reader's trailing newline); for the agent it is the first
		// byte of a torn record (PCR 10, little-endian).
		if err == io.EOF || err != nil || !validRecord(e) {
			if err == nil {
				err = errors.New("SHA-1 template digest does not match the template data")
			}
			a.log.Warn("dropping a torn record at the end of the list (never acknowledged)",
				"entry", len(out), "offset", good, "bytes", a.list.Size()-good, "err", err)
			if err := a.list.Truncate(good); err != nil {
				return nil, err
			}
			return out, nil
		}
		good = r.Offset()
		out = append(out, e)
	}
}

// recoverList carries on the list of an earlier run of this boot. It returns
// done=false when there is nothing to carry on (a crash before the aggregate
// was listed), so the first stage runs again. Called with a.mu held.
func (a *Agent) recoverList(st *persisted) (done bool, err error) {
	if a.list, err = journal.Open(filepath.Join(a.cfg.StateDir, listFile)); err != nil {
		return false, err
	}
	entries, err := a.readList()
	if err != nil {
		return false, err
	}
	if len(entries) == 0 {
		a.log.Info("the previous run stopped before listing the aggregate; starting again")
		a.list.Close()
		a.list = nil
		return false, os.Remove(filepath.Join(a.cfg.StateDir, stateFile))
	}
	hash, err := ima.ParseHashAlg(st.Hash)
	if err != nil || hash.New() == nil {
		return false, fmt.Errorf("agent: %s: hash %q: cannot carry on this list", stateFile, st.Hash)
	}
	tmpl, err := ima.LookupTemplate(st.Template)
	if err != nil {
		return false, fmt.Errorf("agent: %s: %w", stateFile, err)
	}
	if st.Hash != a.cfg.hash.String() || st.Template != a.tmpl.Name || st.PCR != int(a.pcr) {
		a.log.Warn("carrying on the list with the settings it was started with",
			"hash", st.Hash, "template", st.Template, "pcr", st.PCR)
	}
	a.hash, a.tmpl, a.pcr, a.name = hash, tmpl, uint32(st.PCR), st.Aggregate
	for i, name := range st.Banks {
		b, err := pcr.ParseBank(name)
		if err != nil || i >= len(st.Sizes) {
			return false, fmt.Errorf("agent: %s: bad bank %q", stateFile, name)
		}
		a.banks = append(a.banks, BankInfo{Bank: b, Size: st.Sizes[i]})
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
		if k > len(queued) {
			k = len(queued)
		}
		for i := 0; i < k; i++ {
			if !bytes.Equal(entries[i+1].Data, queued[i].Data) {
				return false, fmt.Errorf("%w: entry %d differs from queued measurement %d", ErrListMismatch, i+1, i)
			}
		}
	}

	if st.Mode == "tpm" {
		if err := a.checkTPM(entries); err != nil {
			return false, err
		}
		a.state = Initialised
	} else {
		a.state = Bypass
	}
	if a.exp, err = newExports(a.cfg.RuntimeDir, exportBanks(a.banks), a.order); err != nil {
		return false, err
	}
	for _, e := range entries {
		a.dup[a.dupKey(e)] = struct{}{}
		var digests map[pcr.Bank][]byte
		if a.state == Initialised {
			digests = bankDigests(e, e.Digest, a.banks)
		}
		if err := a.exp.append(e, digests); err != nil {
			return false, err
		}
	}
	a.entries = len(entries)
	if len(queued) > 0 {
		if err := a.drainPending(k); err != nil {
			return false, err
		}
	}
	a.log.Info("recovered the list", "entries", a.entries, "state", a.state.String(), "aggregate", a.name)
	a.notify(fmt.Sprintf("STATUS=%s (%s, recovered %d entries)", a.state, a.name, a.entries))
	return true, nil
}

func (a *Agent) readQueue() ([]*ima.Entry, error) {
	if err := a.countPending(); err != nil {
		return nil, err
	}
	var out []*ima.Entry
	r := ima.NewReader(a.pending.ReaderAt(), ima.ReaderOptions{Order: a.order, DigestSize: 20, AllowUnknownTemplates: true})
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("agent: queued measurements: %w", err)
		}
		out = append(out, e)
	}
}

// checkTPM replays the list and compares it with the TPM in every bank: equal
// carries on; exactly one entry ahead (a crash between the fsync and the
// extend) extends that entry; anything else is ErrListMismatch.
func (a *Agent) checkTPM(entries []*ima.Entry) error {
	t, err := a.open()
	deadline := time.Now().Add(a.cfg.TPMWait)
	for err == nil && t == nil && time.Now().Before(deadline) {
		time.Sleep(a.cfg.PollInterval)
		t, err = a.open()
	}
	if err != nil {
		return fmt.Errorf("agent: the list was extended into a TPM, which does not open: %w", err)
	}
	if t == nil {
		return fmt.Errorf("%w: the list was extended into TPM %s, which is not there", ErrListMismatch, a.cfg.TPM)
	}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	bs, err := t.Banks()
	if err != nil {
		return fmt.Errorf("agent: TPM banks: %w", err)
	}
	var all []pcr.Bank
	for _, b := range a.banks {
		all = append(all, b.Bank)
	}
	if fmt.Sprint(bs) != fmt.Sprint(all) {
		return fmt.Errorf("%w: the TPM's banks are %v, the list was extended into %v", ErrListMismatch, bs, all)
	}
	pcrs := map[int]bool{}
	for _, e := range entries {
		pcrs[int(e.PCR)] = true
	}
	var idx []int
	for i := range pcrs {
		idx = append(idx, i)
	}
	got, err := t.ReadPCRs(all, idx)
	if err != nil {
		return fmt.Errorf("agent: reading PCRs: %w", err)
	}
	replay := func(n int) pcr.Set {
		s := make(pcr.Set)
		for _, b := range a.banks {
			if !b.Bank.Known() {
				continue // cannot be replayed; not compared
			}
			for i := range pcrs {
				v, ok := a.base.Get(b.Bank, i)
				if !ok {
					v = make([]byte, b.Size)
				}
				s.Put(b.Bank, i, v)
			}
		}
		for _, e := range entries[:n] {
			for b, d := range bankDigests(e, e.Digest, a.banks) {
				if b.Known() {
					v, _ := s.Get(b, int(e.PCR))
					s.Put(b, int(e.PCR), pcr.Extend(b, v, d))
				}
			}
		}
		return s
	}
	full := replay(len(entries))
	if diff := diffSets(full, got); diff == "" {
		a.tpm, ok = t, true
		return nil
	}
	if diff := diffSets(replay(len(entries)-1), got); diff == "" {
		last := entries[len(entries)-1]
		a.log.Warn("the list is one entry ahead of the TPM (a crash between writing and extending): extending it", "entry", len(entries)-1)
		if err := t.Extend(int(last.PCR), bankDigests(last, last.Digest, a.banks)); err != nil {
			return fmt.Errorf("agent: extending the last entry: %w", err)
		}
		a.tpm, ok = t, true
		return nil
	}
	return fmt.Errorf("%w: %d entries replay to %s, the TPM has %s; the TPM was reset or the list was cut or changed. "+
		"Nothing more is measured into it. To start a new list, stop the agent and move %s aside (keep it as evidence)",
		ErrListMismatch, len(entries), formatSet(full), formatSet(got), a.cfg.StateDir)
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
