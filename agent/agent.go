package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
)

// Files in Config.StateDir.
const (
	listFile    = "binary_runtime_measurements"
	pendingFile = "pending"
	stateFile   = "state.json"
	lockFile    = "lock"
	previousDir = "previous"
)

// Errors.
var (
	// ErrListMismatch: on restart the durable list does not replay to the
	// TPM's PCRs (the TPM was reset, or the list was cut or edited). The
	// agent refuses to start; see the package documentation for the way out.
	ErrListMismatch = errors.New("agent: the measurement list does not match the TPM")
	// ErrLocked: another agent holds the state directory.
	ErrLocked = errors.New("agent: another agent is running on this state directory")
	// errHashUnavailable: initialising with an algorithm that cannot be
	// computed (the kernel's crypto allocation failure).
	errHashUnavailable = errors.New("agent: hash algorithm cannot be computed")
)

// persisted is state.json: what initialisation decided, so that a restart
// carries on the same list the same way.
type persisted struct {
	Version   int      `json:"version"`
	BootID    string   `json:"boot_id"`
	Mode      string   `json:"mode"` // "tpm" or "bypass"
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
}

// Agent is a running measurement agent. Its methods are safe for concurrent
// use; measurements are serialised.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	order byteOrder
	tpmOn bool

	mu       sync.Mutex
	state    State
	name     string
	hash     ima.HashAlg // effective ima_hash_algo
	tmpl     *ima.Template
	pcr      uint32
	tpm      TPM
	banks    []BankInfo
	base     pcr.Set
	list     *journal.File
	pending  *journal.File
	entries  int
	queued   int
	seen     map[fileKey]fileState
	dup      map[string]struct{}
	exp      *exports
	failErr  error
	bootID   string
	lock     *os.File
	tm       Timings
	hbuf     []byte // file read buffer, used under mu
	fatal    chan error
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// Run starts the agent (first stage, or recovery of an existing list),
// serves requests on Config.Socket until ctx is done, and returns nil then.
// It returns an error if the agent cannot start or fails while running.
func Run(ctx context.Context, cfg Config) error {
	a, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx)
}

// New prepares the directories, takes the state directory's lock, and runs
// the first stage (or recovers the list left by a previous run). A deferred
// agent watches for the late stage until ctx is done or Close.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.PCR == DefaultPCR && kernelIMAActive(cfg.SecurityFS) {
		return nil, ErrKernelPCR
	}
	a := &Agent{
		cfg:   cfg,
		log:   cfg.Logger,
		order: binary.NativeEndian,
		tpmOn: cfg.TPM != "none",
		tmpl:  cfg.Template,
		pcr:   uint32(cfg.PCR),
		hash:  effectiveHash(cfg.hash),
		seen:  make(map[fileKey]fileState),
		dup:   make(map[string]struct{}),
		fatal: make(chan error, 1),
		stop:  make(chan struct{}),
	}
	if err := a.start(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// effectiveHash is the algorithm initialisation ends up with: the one asked
// for if it can be computed, else the default (init_ima's retry).
func effectiveHash(h ima.HashAlg) ima.HashAlg {
	if h.New() == nil {
		return DefaultHash
	}
	return h
}

func (a *Agent) start(ctx context.Context) error {
	for _, d := range []string{a.cfg.StateDir, a.cfg.RuntimeDir, filepath.Dir(a.cfg.Socket)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	if err := a.takeLock(); err != nil {
		return err
	}
	id, err := os.ReadFile(a.cfg.BootIDFile)
	if err != nil {
		return fmt.Errorf("agent: boot id: %w", err)
	}
	a.bootID = strings.TrimSpace(string(id))
	if a.pending, err = journal.Open(filepath.Join(a.cfg.StateDir, pendingFile)); err != nil {
		return err
	}

	st, err := a.loadState()
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if st != nil {
		done, err := a.recoverList(st)
		if err != nil || done {
			return err
		}
	}
	if err := a.countPending(); err != nil {
		return err
	}
	return a.firstStage(ctx)
}

func (a *Agent) takeLock() error {
	f, err := os.OpenFile(filepath.Join(a.cfg.StateDir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w (%s)", ErrLocked, a.cfg.StateDir)
		}
		return fmt.Errorf("agent: lock %s: %w", a.cfg.StateDir, err)
	}
	a.lock = f
	return nil
}

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
		a.state = Deferred
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
		Template: a.tmpl.Name, PCR: int(a.pcr), TPM: a.cfg.TPM, Mode: "bypass"}
	var (
		banks []BankInfo
		set   pcr.Set
		known []pcr.Bank
	)
	if d.Action == InitTPM {
		st.Mode = "tpm"
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
		var err2 error
		if set, err2 = t.ReadPCRs(all, idx); err2 != nil {
			return fmt.Errorf("agent: reading PCRs for the boot aggregate: %w", err2)
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
	a.hash, a.name, a.banks, a.base = hash, d.Name, banks, st.Base
	a.entries = 0
	if d.Action == InitTPM {
		a.tpm, a.state = t, Initialised
	} else {
		a.tpm, a.state = nil, Bypass
	}
	if a.exp, err = newExports(a.cfg.RuntimeDir, exportBanks(banks), a.order); err != nil {
		return err
	}
	a.log.Info("initialised", "aggregate", d.Name, "state", a.state.String(), "hash", hash.String(),
		"template", a.tmpl.Name, "pcr", a.pcr, "banks", bankNames(banks), "aggregate_digest", fmt.Sprintf("%s:%x", agg.Alg, agg.Digest))
	if err := a.commit(e); err != nil {
		return err
	}
	a.dup[a.dupKey(e)] = struct{}{}
	return a.drainPending(0)
}

// drainPending lists the queued measurements from the skip-th on, in order,
// then empties the queue. Called with a.mu held.
func (a *Agent) drainPending(skip int) error {
	if a.pending.Size() == 0 {
		a.queued = 0
		return nil
	}
	n := 0
	r := ima.NewReader(a.pending.ReaderAt(), ima.ReaderOptions{Order: a.order, DigestSize: 20, AllowUnknownTemplates: true})
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("agent: queued measurements: %w", err)
		}
		if n >= skip {
			if err := a.commit(e); err != nil {
				return err
			}
		}
		n++
	}
	if n > 0 {
		a.log.Info("listed the measurements queued while deferred", "count", n-skip)
	}
	a.queued = 0
	return a.pending.Truncate(0)
}

// countPending counts the queue and fills the duplicate table from it
// (measurements queued by an earlier run that was still deferred).
func (a *Agent) countPending() error {
	a.queued = 0
	if a.pending.Size() == 0 {
		return nil
	}
	r := ima.NewReader(a.pending.ReaderAt(), ima.ReaderOptions{Order: a.order, DigestSize: 20, AllowUnknownTemplates: true})
	var good int64
	for {
		e, err := r.Next()
		if err == io.EOF && good == a.pending.Size() {
			break
		}
		if err == io.EOF || err != nil || !validRecord(e) {
			a.log.Warn("dropping a torn record at the end of the queue (never acknowledged)", "offset", good, "bytes", a.pending.Size()-good, "err", err)
			if err := a.pending.Truncate(good); err != nil {
				return err
			}
			break
		}
		good = r.Offset()
		a.dup[a.dupKey(e)] = struct{}{}
		a.queued++
	}
	return nil
}

// commit appends e to the list durably, extends it, and updates the
// exports. Called with a.mu held.
func (a *Agent) commit(e *ima.Entry) error {
	rec, err := appendBinary(nil, e, e.Digest, a.order)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := a.list.Append(rec); err != nil {
		return err
	}
	t1 := time.Now()
	a.tm.Append += t1.Sub(t0)
	a.entries++
	var digests map[pcr.Bank][]byte
	if a.state == Initialised {
		digests = bankDigests(e, e.Digest, a.banks)
		err := a.tpm.Extend(int(e.PCR), digests)
		a.tm.Extend += time.Since(t1)
		if err != nil {
			a.state = Failed
			a.failErr = fmt.Errorf("agent: TPM extend failed; the list is one entry ahead of the TPM (a restart recovers it): %w", err)
			a.log.Error("TPM extend failed", "err", err)
			return a.failErr
		}
	}
	t2 := time.Now()
	err = a.exp.append(e, digests)
	a.tm.Export += time.Since(t2)
	a.tm.Committed++
	if err != nil {
		a.log.Error("updating the exports failed", "err", err)
		return err
	}
	return nil
}

// Timings are cumulative times of the steps of the entries listed so far,
// for benchmarks (bench/measure.sh): hashing the files, appending and
// fdatasyncing the list, the TPM extend, and the exports.
type Timings struct {
	Hashed, Committed            int
	Hash, Append, Extend, Export time.Duration
}

// Timings returns the cumulative step timings.
func (a *Agent) Timings() Timings {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tm
}

// dupKey is the kernel's duplicate key (ima-spec.md §4.5): the template
// digest in ima_hash_algo and the PCR.
func (a *Agent) dupKey(e *ima.Entry) string {
	h := a.hash.New()
	e.WriteHashInput(h)
	return fmt.Sprintf("%d:%x", e.PCR, h.Sum(nil))
}

// State returns the agent's state.
func (a *Agent) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Status is what `imago status` shows.
type Status struct {
	State     string   `json:"state"`
	Aggregate string   `json:"aggregate"`
	TPM       string   `json:"tpm"`
	Banks     []string `json:"banks"`
	Hash      string   `json:"hash"`
	Template  string   `json:"template"`
	PCR       int      `json:"pcr"`
	Entries   int      `json:"entries"`
	Pending   int      `json:"pending"`
	Error     string   `json:"error,omitempty"`
}

// Status returns the agent's status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Status{State: a.state.String(), Aggregate: a.name, TPM: a.cfg.TPM, Banks: bankNames(a.banks),
		Hash: a.hash.String(), Template: a.tmpl.Name, PCR: int(a.pcr), Entries: a.entries, Pending: a.queued}
	if !a.tpmOn {
		s.TPM = "none"
	}
	if a.failErr != nil {
		s.Error = a.failErr.Error()
	}
	return s
}

func bankNames(banks []BankInfo) []string {
	out := []string{}
	for _, b := range banks {
		out = append(out, b.Bank.String())
	}
	return out
}

func (a *Agent) notify(state string) {
	if a.cfg.Notify != nil {
		a.cfg.Notify(state)
	}
}

// Close stops the agent's goroutines and closes the TPM and files.
func (a *Agent) Close() error {
	a.stopOnce.Do(func() { close(a.stop) })
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if a.tpm != nil {
		errs = append(errs, a.tpm.Close())
		a.tpm = nil
	}
	for _, f := range []*journal.File{a.list, a.pending} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	a.list, a.pending = nil, nil
	if a.exp != nil {
		errs = append(errs, a.exp.close())
		a.exp = nil
	}
	if a.lock != nil {
		errs = append(errs, a.lock.Close())
		a.lock = nil
	}
	return errors.Join(errs...)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// validRecord checks a record read back from the list or queue: its SHA-1
// template digest must be its template data's, or all zeros for a violation
// entry (ima-spec.md §5.2; the gate lists them). A torn record fails this
// even when its lengths parse, unless the tear left 20 zero bytes where the
// digest goes, which a replay against the TPM then catches.
func validRecord(e *ima.Entry) bool {
	if len(e.Digest) != 20 {
		return false
	}
	if isZero(e.Digest) {
		return true
	}
	d := e.TemplateDigest(pcr.SHA1)
	return string(d) == string(e.Digest)
}

// ReadPCRs reads PCRs idx of every allocated bank through the agent's TPM
// (for `imago demo`, whose simulator lives in the agent's process). It is an
// error in bypass or while deferred.
func (a *Agent) ReadPCRs(idx []int) (pcr.Set, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tpm == nil {
		return nil, fmt.Errorf("agent: no TPM (%s)", a.state)
	}
	var banks []pcr.Bank
	for _, b := range a.banks {
		banks = append(banks, b.Bank)
	}
	return a.tpm.ReadPCRs(banks, idx)
}

// ListPath returns the durable list's path.
func (a *Agent) ListPath() string { return filepath.Join(a.cfg.StateDir, listFile) }

// ExportDir returns the runtime directory of the exports.
func (a *Agent) ExportDir() string { return a.cfg.RuntimeDir }
