package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/imago-ima/imago/adopt"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
	"github.com/imago-ima/imago/pcr"
)

// Files in Config.StateDir.
const (
	listFile    = "binary_runtime_measurements"
	pendingFile = "pending"
	stateFile   = "state.json"
	sessionFile = "tpm-session"
	lockFile    = "lock"
	previousDir = "previous"
)

// Errors.
var (
	// ErrListMismatch: the durable list does not replay to the TPM's PCRs
	// (the TPM was reset, or the list was cut or edited), or state.json
	// does not describe the list. The agent refuses to start; the error
	// says the way out.
	ErrListMismatch = errors.New("agent: the measurement list does not match the TPM")
	// ErrCorrupt: the durable list or the queue is damaged other than by a
	// torn final record; the file is left as it is.
	ErrCorrupt = errors.New("agent: the measurement list is damaged")
	// ErrTPMReset: the TPM was reset (or replaced) under the running agent:
	// its PCRs no longer hold the list. The agent goes to the failed state.
	ErrTPMReset = errors.New("agent: the TPM was reset")
	// ErrLocked: another agent holds the state directory.
	ErrLocked = errors.New("agent: another agent is running on this state directory")
	// ErrSocketInUse: another agent serves the socket path.
	ErrSocketInUse = errors.New("agent: another agent serves this socket")
	// ErrSocketPath: something other than a socket is at the socket path.
	ErrSocketPath = errors.New("agent: the socket path is taken")
	// ErrNotSupported: the agent runs on Linux only.
	ErrNotSupported = errors.New("agent: the measurement agent runs on Linux only")
	// errHashUnavailable: initialising with an algorithm that cannot be
	// computed (the kernel's crypto allocation failure).
	errHashUnavailable = errors.New("agent: hash algorithm cannot be computed")
)

// Agent is a running measurement agent. Its methods are safe for concurrent
// use; entries are listed one at a time.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	order byteOrder
	tpmOn bool

	// mu is the list lock: it serialises listing (list, queue, exports,
	// TPM) and guards the fields below up to vmu.
	mu       sync.Mutex
	tpm      TPM
	base     pcr.Set // the agent's PCR before the aggregate, per bank
	expected pcr.Set // what the TPM's PCRs hold if it is in step with the list
	reset    uint32  // the TPM's reset count the list was extended under
	restart  uint32  // and its restart count, last seen
	list     *journal.File
	pending  *journal.File
	dup      map[string]struct{}
	exp      *exports

	// vmu guards the view: these fields are written with mu and vmu held,
	// and read with either, so that Status never waits for a listing.
	vmu     sync.RWMutex
	state   State
	name    string
	hash    ima.HashAlg // effective ima_hash_algo
	tmpl    *ima.Template
	pcr     uint32
	banks   []BankInfo
	entries int
	queued  int
	failErr error
	expErr  error // the exports could not be brought up to date

	seen     seenCache
	adopter  *adopt.Adopter // Config.Adopt (adopt.go)
	bootID   string
	locks    []*os.File // the state directory's and the socket's
	tmu      sync.Mutex
	tm       Timings
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

// New prepares the directories, takes the state directory's and the
// socket's locks, and runs the first stage (or recovers the list left by a
// previous run). A deferred agent watches for the late stage until ctx is
// done or Close.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if err := supported(); err != nil {
		return nil, err
	}
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
		dup:   make(map[string]struct{}),
		fatal: make(chan error, 1),
		stop:  make(chan struct{}),
	}
	if err := a.start(ctx); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.startAdoption(ctx); err != nil {
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
	if err := a.takeLock(filepath.Join(a.cfg.StateDir, lockFile), fmt.Errorf("%w (%s)", ErrLocked, a.cfg.StateDir)); err != nil {
		return err
	}
	// A second agent on the same socket path would take the socket over
	// from the first; the lock next to it says a live agent serves it.
	if err := a.takeLock(a.cfg.Socket+".lock", fmt.Errorf("%w (%s)", ErrSocketInUse, a.cfg.Socket)); err != nil {
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
	if _, err := a.readQueue(); err != nil {
		return err
	}
	return a.firstStage(ctx)
}

// takeLock takes an exclusive lock on the file at path (created if need
// be) for the agent's lifetime; held is the error when another process
// holds it.
func (a *Agent) takeLock(path string, held error) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|oNoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("agent: lock: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("agent: lock %s: not a regular file", path)
	}
	if err := flockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return held
		}
		return fmt.Errorf("agent: lock %s: %w", path, err)
	}
	a.locks = append(a.locks, f)
	return nil
}

// update changes the view (the fields under vmu). Called with a.mu held.
func (a *Agent) update(f func()) {
	a.vmu.Lock()
	f()
	a.vmu.Unlock()
}

// params returns the template, hash and PCR the list is kept with (set at
// initialisation, which may happen while measurements are hashed).
func (a *Agent) params() (*ima.Template, ima.HashAlg, uint32) {
	a.vmu.RLock()
	defer a.vmu.RUnlock()
	return a.tmpl, a.hash, a.pcr
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
	a.tmu.Lock()
	defer a.tmu.Unlock()
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
	a.vmu.RLock()
	defer a.vmu.RUnlock()
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
	// Error is why the agent failed (state "failed"), with the way out.
	Error string `json:"error,omitempty"`
	// Exports is set while the exports could not be brought up to date
	// (measurements are refused until they are).
	Exports string `json:"exports,omitempty"`
	// Adoption is the adoption of the kernel's list (Config.Adopt).
	Adoption *adopt.Status `json:"adoption,omitempty"`
}

// Status returns the agent's status. It never waits for a measurement.
func (a *Agent) Status() Status {
	a.vmu.RLock()
	defer a.vmu.RUnlock()
	s := Status{State: a.state.String(), Aggregate: a.name, TPM: a.cfg.TPM, Banks: bankNames(a.banks),
		Hash: a.hash.String(), Template: a.tmpl.Name, PCR: int(a.pcr), Entries: a.entries, Pending: a.queued}
	if !a.tpmOn {
		s.TPM = "none"
	}
	if a.failErr != nil {
		s.Error = a.failErr.Error()
	}
	if a.expErr != nil {
		s.Exports = a.expErr.Error()
	}
	s.Adoption = a.adoptionStatus()
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

// Close stops the agent's goroutines and closes the TPM (flushing its
// guard session) and files.
func (a *Agent) Close() error {
	a.stopOnce.Do(func() { close(a.stop) })
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if a.tpm != nil {
		errs = append(errs, a.tpm.Close())
		a.tpm = nil
		// The guard was flushed: a later start must not flush the handle,
		// which another client may hold by then.
		os.Remove(filepath.Join(a.cfg.StateDir, sessionFile))
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
	for _, f := range a.locks {
		errs = append(errs, f.Close())
	}
	a.locks = nil
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

// ReadPCRs reads PCRs idx of every allocated bank through the agent's TPM
// (for `imago demo`, whose simulator lives in the agent's process). It is an
// error in bypass or while deferred.
func (a *Agent) ReadPCRs(idx []int) (pcr.Set, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tpm == nil {
		return nil, fmt.Errorf("agent: no TPM (%s)", a.State())
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
