package adopt

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
)

// Defaults.
const (
	DefaultInterval   = time.Second
	DefaultSecurityFS = "/sys/kernel/security"
	DefaultBootIDFile = "/proc/sys/kernel/random/boot_id"
)

// Limits.
const (
	// batchEntries and batchBytes bound the entries read ahead of their
	// extends (a batch ends at whichever comes first; one larger entry
	// makes a batch of its own); the TPM's PCRs are compared with what
	// adoption expects once per batch.
	batchEntries = 256
	batchBytes   = 4 << 20
	// maxPause bounds the pause before waiting again for a TPM that failed.
	maxPause = 30 * time.Second
	// numPCRs is the PCRs of a PC Client TPM; an entry naming a higher PCR
	// (pcr= allows up to 63) is not extended, as the kernel's extend of it
	// fails too.
	numPCRs = 24
)

// Config configures an Adopter. Zero fields take the defaults.
type Config struct {
	// SecurityFS is where securityfs is mounted (DefaultSecurityFS); the
	// list is read from its ima/ (or integrity/ima/) directory.
	SecurityFS string
	// TPM is the TPM URI (package tpm: auto, a device, tcp://, unix://);
	// "" is auto: any /dev/tpmrm<N>, else /dev/tpm<N>, whenever it appears.
	TPM string
	// Interval is how often the list's count is polled, which bounds how far
	// the TPM lags the list, and how often the TPM is looked for
	// (DefaultInterval).
	Interval time.Duration
	// Reserved are PCRs the kernel's list must not name (the agent's own
	// list's PCR): adoption refuses rather than mix two lists in one PCR.
	Reserved []int
	// StateFile, if set, keeps the appearance (how many entries were listed
	// when the TPM appeared) across restarts within one boot.
	StateFile string
	// BootIDFile names this boot (DefaultBootIDFile).
	BootIDFile string
	Logger     *slog.Logger
	// OnAdopt, if set, is called when adoption starts on a TPM that holds
	// none of the kernel's list, after the record is durable and before the
	// first extend (the agent lists it). An error stops adoption before
	// anything is extended.
	OnAdopt func(ctx context.Context, r Record) error
}

func (c *Config) setDefaults() error {
	if c.SecurityFS == "" {
		c.SecurityFS = DefaultSecurityFS
	}
	if c.TPM == "" {
		c.TPM = "auto"
	}
	if c.TPM == "none" || c.TPM == "sim" {
		return fmt.Errorf("adopt: --tpm %s: adoption needs a TPM the kernel could have had (auto, a device, tcp:// or unix://)", c.TPM)
	}
	if err := tpm.CheckURI(c.TPM); err != nil {
		return err
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < 0 {
		return fmt.Errorf("adopt: interval %v is negative", c.Interval)
	}
	if c.BootIDFile == "" {
		c.BootIDFile = DefaultBootIDFile
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Adopter adopts the kernel's TPM-bypass list into a TPM that appears after
// IMA's init. Run is its lifecycle; Status may be called at any time.
type Adopter struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	st Status
	// caughtUp is when the list was last seen with every entry extended
	// (the count read that preceded the last catch-up).
	caughtUp time.Time
}

// New checks the configuration and returns an Adopter in state "starting".
func New(cfg Config) (*Adopter, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	a := &Adopter{cfg: cfg, log: cfg.Logger}
	a.st = Status{State: Starting, TPM: cfg.TPM, Interval: cfg.Interval.Seconds()}
	return a, nil
}

// Run adopts until ctx is done, then returns nil. It first checks that the
// kernel's list is a TPM-bypass list, waits for a TPM, finds how many of the
// list's entries the TPM already holds (a restart, or a crash between two
// extends), extends the rest one TPM2_PCR_Extend per entry, and then follows
// the list as the kernel appends to it. When the TPM fails (a *TPMError: a
// timeout, a TPM that went away), Run closes it, waits for a TPM again and
// starts over from finding where it stands, pausing longer each time nothing
// got extended. A refusal is a *RefusedError (errors.Is ErrRefused) after
// which nothing more is extended; that, and a list that cannot be read, end
// Run with the error.
func (a *Adopter) Run(ctx context.Context) error {
	err := a.run(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err == nil || (ctx.Err() != nil && errors.Is(err, ctx.Err())):
		a.st.State = Stopped
		return nil
	case errors.Is(err, ErrRefused):
		a.st.State = Refused
		a.log.Error("adoption refused: the TPM is left as it is", "err", err)
	default:
		a.st.State = Failed
		a.log.Error("adoption failed", "err", err)
	}
	a.st.Error = err.Error()
	var re *RefusedError
	if errors.As(err, &re) {
		a.st.Reason = string(re.Reason)
	}
	return err
}

func (a *Adopter) run(ctx context.Context) error {
	l, err := openKernelList(a.cfg.SecurityFS)
	if err != nil {
		return err
	}
	defer l.close()
	first, err := a.firstEntry(l)
	if err != nil {
		return err
	}
	alg, err := CheckFirst(first)
	if err != nil {
		return err
	}
	if slices.Contains(a.cfg.Reserved, int(first.PCR)) {
		return refuse(Reserved, "the kernel's list extends PCR %d, which is reserved (the agent's own list uses it)", first.PCR)
	}
	a.log.Info("the kernel's list is a TPM-bypass list (zero boot aggregate): it will be adopted when a TPM appears",
		"list", l.f.Name(), "pcr", first.PCR, "hash", alg)
	pause := a.cfg.Interval
	for {
		a.set(func(s *Status) { s.State = Waiting })
		t, err := a.waitTPM(ctx, l)
		if t == nil || err != nil {
			return err
		}
		before := a.Status().Adopted
		err = a.adopt(ctx, l, t, first, alg)
		t.Close()
		var te *TPMError
		if !errors.As(err, &te) || ctx.Err() != nil {
			return err
		}
		// The TPM failed (it may be gone): wait for it again, and find
		// where it stands, as a restart would. The pause grows while no
		// entry gets extended.
		if a.Status().Adopted > before {
			pause = a.cfg.Interval
		}
		a.log.Error("the TPM failed while adopting; waiting for it again", "err", err, "pause", pause)
		a.set(func(s *Status) { s.Error = err.Error() })
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}

// firstEntry reads the list's first entry.
func (a *Adopter) firstEntry(l *kernelList) (*ima.Entry, error) {
	for e, err := range l.entries(0) {
		if err != nil {
			return nil, err
		}
		return e.e, nil
	}
	return nil, refuse(BadList, "%s is empty: a kernel lists its boot aggregate first", l.f.Name())
}

// waitTPM polls until the TPM opens, returning nil, nil when ctx is done.
// Meanwhile the status follows the kernel's count.
func (a *Adopter) waitTPM(ctx context.Context, l *kernelList) (*tpm.TPM, error) {
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	logged := false
	for {
		if n, err := l.count(); err == nil {
			a.set(func(s *Status) { s.Listed = max(s.Listed, n) })
		}
		if tpm.Available(a.cfg.TPM) {
			t, err := tpm.Open(a.cfg.TPM)
			switch {
			case err == nil:
				return t, nil
			case errors.Is(err, tpm.ErrNoTPM):
			case errors.Is(err, tpm.ErrBadURI), errors.Is(err, tpm.ErrDisabled), errors.Is(err, tpm.ErrSimulatorNotBuilt):
				return nil, err
			default:
				if !logged {
					a.log.Warn("a TPM is there but did not open; still waiting", "tpm", a.cfg.TPM, "err", err)
					logged = true
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-tick.C:
		}
	}
}

// adopt runs on an open TPM: where does it stand, then extend and follow.
func (a *Adopter) adopt(ctx context.Context, l *kernelList, t *tpm.TPM, first *ima.Entry, alg string) error {
	banks, err := tpmBanks(t)
	if err != nil {
		return tpmErr(err, "TPM banks")
	}
	listedAt, err := l.count()
	if err != nil {
		return err
	}
	all := make([]pcr.Bank, len(banks))
	for i, b := range banks {
		all[i] = b.Alg
		if !b.Alg.Known() {
			a.log.Warn("PCR bank with an algorithm imago cannot hash: extended with the SHA-1 template digest zero-padded, as the kernel does, and not checked", "bank", b.Alg.String())
		}
	}
	idx := make([]int, numPCRs)
	for i := range idx {
		idx[i] = i
	}
	pcrs, err := t.ReadPCRs(all, idx)
	if err != nil {
		return tpmErr(err, "reading the TPM's PCRs")
	}
	snapshot := func() iter.Seq2[*ima.Entry, error] {
		return func(yield func(*ima.Entry, error) bool) {
			n := 0
			for e, err := range l.entries(0) {
				if n == listedAt {
					return
				}
				n++
				if !yield(e.e, err) || err != nil {
					return
				}
			}
		}
	}
	a.mu.Lock()
	a.caughtUp = time.Now() // the lag counts from here until the first catch-up
	a.mu.Unlock()
	held, err := FindPrefix(snapshot, pcrs, banks)
	if err != nil {
		return err
	}
	a.set(func(s *Status) {
		s.State, s.TPM, s.Listed, s.Adopted = Adopting, t.String(), listedAt, held
		s.Banks = bankNames(banks)
	})
	if held == 0 {
		rec := Record{Listed: listedAt, PCR: int(first.PCR), Banks: all, Aggregate: aggregate(all, alg, pcrs)}
		a.log.Info("a TPM appeared: adopting the kernel's list into it", "tpm", t.String(),
			"listed", listedAt, "banks", bankNames(banks), "aggregate", rec.Aggregate)
		if err := a.saveAppearance(rec, t.String()); err != nil {
			return err
		}
		if a.cfg.OnAdopt != nil {
			if err := a.cfg.OnAdopt(ctx, rec); err != nil {
				return fmt.Errorf("adopt: recording the adoption: %w", err)
			}
		}
		a.set(func(s *Status) { s.AppearedAt = &rec.Listed })
	} else {
		at := a.loadAppearance()
		a.log.Info("resuming: the TPM already holds the first entries of the kernel's list",
			"tpm", t.String(), "held", held, "listed", listedAt, "appeared_at", fmtInt(at))
		a.set(func(s *Status) { s.AppearedAt, s.ResumedAt = at, &held })
	}
	f := &follower{a: a, l: l, t: t, banks: banks, touched: map[int]bool{}}
	if err := f.skip(held); err != nil {
		return err
	}
	f.chain = newChain(banks, pcrs, f.touched)
	f.touched[int(first.PCR)] = true
	return f.run(ctx)
}

// follower extends the kernel's list into the TPM from entry n (byte off)
// on, and keeps doing so as the list grows.
type follower struct {
	a       *Adopter
	l       *kernelList
	t       *tpm.TPM
	banks   []Bank
	chain   *chain
	touched map[int]bool // PCRs the entries so far name (below numPCRs)
	n       int
	off     int64
	warned  bool
}

// skip moves past the first k entries, which the TPM holds.
func (f *follower) skip(k int) error {
	viol := 0
	for e, err := range f.l.entries(0) {
		if f.n == k {
			break
		}
		if err != nil {
			return err
		}
		f.n, f.off = f.n+1, e.next
		f.note(e.e)
		if e.e.IsViolation() {
			viol++
		}
	}
	if f.n != k {
		return fmt.Errorf("adopt: the list has %d entries, fewer than the %d the TPM holds", f.n, k)
	}
	f.a.set(func(s *Status) { s.Violations = viol })
	return nil
}

// note remembers the PCR an entry names.
func (f *follower) note(e *ima.Entry) {
	if e.PCR < numPCRs {
		f.touched[int(e.PCR)] = true
	}
}

// run extends what is listed, then polls the count every interval.
func (f *follower) run(ctx context.Context) error {
	tick := time.NewTicker(f.a.cfg.Interval)
	defer tick.Stop()
	stuck := 0
	for {
		seen := time.Now()
		count, err := f.l.count()
		if err != nil {
			return err
		}
		if count < f.n {
			return refuse(BadList, "runtime_measurements_count went down to %d after %d entries were adopted: the list is not append-only", count, f.n)
		}
		if count > f.n {
			if err := f.catchUp(ctx); err != nil {
				return err
			}
		}
		if f.n >= count {
			stuck = 0
			f.a.caughtUpAt(seen, count, f.n)
		} else if stuck++; stuck == 10 {
			f.a.log.Warn("the count says more entries than the list yields", "count", count, "read", f.n)
		}
		f.a.set(func(s *Status) { s.Listed = max(count, f.n) })
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// catchUp extends every complete entry listed after f.off, batch by batch:
// before each batch the TPM's PCRs that the list uses are compared with what
// adoption expects (never extend into a TPM that was not checked).
func (f *follower) catchUp(ctx context.Context) error {
	for {
		var batch []listed
		size, full := 0, false
		for e, err := range f.l.entries(f.off) {
			if err != nil {
				return err
			}
			batch = append(batch, e)
			size += len(e.e.Data)
			if full = len(batch) == batchEntries || size >= batchBytes; full {
				break
			}
		}
		if len(batch) == 0 {
			return nil
		}
		if err := f.check(batch); err != nil {
			return err
		}
		for _, e := range batch {
			if ctx.Err() != nil {
				return nil
			}
			if err := f.extend(e); err != nil {
				return err
			}
		}
		if !full {
			return nil
		}
	}
}

// check reads the PCRs the list has used and the batch will use, in every
// bank imago can hash, and compares them with the chain.
func (f *follower) check(batch []listed) error {
	use := map[int]bool{}
	for i := range f.touched {
		use[i] = true
	}
	for _, e := range batch {
		if e.e.PCR < numPCRs {
			use[int(e.e.PCR)] = true
		}
	}
	var idx []int
	for i := range use {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	kb := known(f.banks)
	vals, err := f.t.ReadPCRs(kb, idx)
	if err != nil {
		return tpmErr(err, "reading the TPM's PCRs")
	}
	return f.chain.check(vals, idx)
}

// extend extends one entry.
func (f *follower) extend(e listed) error {
	if err := CheckListed(f.n, e.e); err != nil {
		return err
	}
	if slices.Contains(f.a.cfg.Reserved, int(e.e.PCR)) {
		return refuse(Reserved, "entry %d names PCR %d, which is reserved (the agent's own list uses it)", f.n, e.e.PCR)
	}
	if e.e.PCR >= numPCRs {
		if !f.warned {
			f.a.log.Warn("an entry names a PCR the TPM does not have: not extended, as the kernel's extend of it fails too", "entry", f.n, "pcr", e.e.PCR)
			f.warned = true
		}
	} else {
		d := Digests(e.e, f.banks)
		if err := f.t.Extend(int(e.e.PCR), d); err != nil {
			return tpmErr(err, "extending entry %d", f.n+1)
		}
		f.chain.extend(int(e.e.PCR), d)
		f.note(e.e)
	}
	f.n, f.off = f.n+1, e.next
	viol := e.e.IsViolation()
	f.a.set(func(s *Status) {
		s.Adopted = f.n
		s.Listed = max(s.Listed, f.n)
		if viol {
			s.Violations++
		}
	})
	f.a.log.Debug("extended", "entry", f.n, "pcr", e.e.PCR, "violation", viol)
	return nil
}

// tpmBanks returns the TPM's allocated banks with their digest sizes.
func tpmBanks(t *tpm.TPM) ([]Bank, error) {
	bs, err := t.Banks()
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 {
		return nil, errors.New("adopt: the TPM has no allocated PCR bank")
	}
	out := make([]Bank, 0, len(bs))
	for _, b := range bs {
		n, err := t.DigestSize(b)
		if err != nil {
			return nil, fmt.Errorf("bank %s: %w", b, err)
		}
		out = append(out, Bank{Alg: b, Size: n})
	}
	return out, nil
}

// aggregate is the boot aggregate the kernel would have recorded from the
// TPM's PCR 0-9 with ima_hash_algo alg (ima-spec.md §6.2), "<alg>:<hex>".
func aggregate(banks []pcr.Bank, alg string, pcrs pcr.Set) string {
	var kb []pcr.Bank
	for _, b := range banks {
		if b.Known() {
			kb = append(kb, b)
		}
	}
	name, d, ok := bootagg.Kernel(kb, alg, pcrs)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s:%x", name, d)
}

func bankNames(banks []Bank) []string {
	out := make([]string, len(banks))
	for i, b := range banks {
		out[i] = b.Alg.String()
	}
	return out
}

func fmtInt(p *int) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprint(*p)
}
