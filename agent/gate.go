//go:build linux

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/fsfacts"
	"github.com/imago-ima/imago/internal/xattr"
)

// The gate (package gate) holds opens and execs on watched filesystems
// until the agent has evaluated the policy, measured, appended, extended
// and, under an appraise rule, appraised the file: IMA's "measure before
// use" (ima-spec.md §8.7) in user space. This file wires it to the agent.

// GateConfig configures the gate.
type GateConfig struct {
	// Mounts are paths on the filesystems to watch.
	Mounts []string
	Policy GatePolicy
	// Keyring holds the keys appraise rules verify signatures with.
	Keyring  *digsig.Keyring
	Appraise AppraiseMode
	// Workers, Queue, Timeout, FailClosed: see gate.Config.
	Workers, Queue int
	Timeout        time.Duration
	FailClosed     bool
	// Ready, if set, is closed once the gate is marked and reading.
	Ready chan<- struct{}
	// NoIgnoreMarks keeps every exec reported even where the kernel could
	// be asked to skip the execs of a measured, unchanged file (see
	// Needs.ExecCacheable); for benchmarks of the gate's own path.
	NoIgnoreMarks bool
}

// RunGate runs the agent (as Run does) with the gate on cfg.Mounts. The
// agent must not fork or exec while it runs: a child's exec on a watched
// filesystem would wait on its own parent.
func RunGate(ctx context.Context, cfg Config, gc GateConfig) error {
	a, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, err := a.StartGate(ctx, gc)
	if err != nil {
		return err
	}
	serr := a.Serve(ctx)
	cancel()
	gerr := g.Wait()
	if serr != nil {
		return serr
	}
	return gerr
}

// RunningGate is a gate started by StartGate.
type RunningGate struct {
	g    *gate.Gate
	h    *gateHandler
	done chan error
}

// Wait waits for the gate to stop (its context done) and returns its error.
func (r *RunningGate) Wait() error { return <-r.done }

// Stats returns the gate's counters.
func (r *RunningGate) Stats() GateStats {
	s := r.h.stats()
	s.Gate = r.g.Stats()
	return s
}

// Marks returns each watched path and its mark type.
func (r *RunningGate) Marks() map[string]string { return r.g.Marks() }

// GateStats counts the gate's work.
type GateStats struct {
	Gate                                   gate.Stats
	Cached, Hashed, Violations, Denied     uint64
	AppraiseFailed, Fixed, Errors, Skipped uint64
}

// StartGate marks gc.Mounts and answers their events until ctx is done.
func (a *Agent) StartGate(ctx context.Context, gc GateConfig) (*RunningGate, error) {
	if gc.Policy == nil {
		return nil, errors.New("agent: the gate needs a policy")
	}
	if gc.Keyring == nil {
		gc.Keyring = &digsig.Keyring{}
	}
	h := &gateHandler{a: a, cfg: gc, log: a.log, needs: gc.Policy.Needs(),
		versions: map[fileKey]map[fileVersion]*versionInfo{}, inodes: map[fileKey]*inodeInfo{}, execs: map[int]fileKey{},
		ignored: map[fileKey]ignoreSet{}, inert: map[uint64]bool{}, fs: map[uint64]fsfacts.FS{}, tmpls: map[string]*ima.Template{}}
	// Under a policy with FILE_CHECK rules, the opens of a file are left
	// to the kernel only on filesystems where no open can be measured or
	// appraised (GatePolicy.FileCheckInert), and its execs only there too:
	// elsewhere the exec event stays, as it tells the exec's own
	// FAN_OPEN_PERM from an ordinary open without reading
	// /proc/<tid>/syscall, which costs more (wait_task_inactive) than the
	// exec event saves.
	h.ignoreMarks = !gc.NoIgnoreMarks && h.needs.ExecCacheable && ignorableTemplate(a.tmpl)
	h.openMarks = !gc.NoIgnoreMarks && h.needs.Opens
	g, err := gate.New(gate.Config{Mounts: gc.Mounts, Opens: h.needs.Opens, Closes: h.needs.Opens && h.needs.Measure,
		// FAN_CLOSE_WRITE is where the kernel notices a change
		// (ima_check_last_writer): size and times can stay the same.
		CloseWrites: h.needs.Measure || h.needs.Appraise || h.ignoreMarks || h.openMarks,
		Handler:     h, Workers: gc.Workers, Queue: gc.Queue, Timeout: gc.Timeout, FailClosed: gc.FailClosed, Logger: a.log})
	if err != nil {
		return nil, err
	}
	r := &RunningGate{g: g, h: h, done: make(chan error, 1)}
	go func() { r.done <- g.Run(ctx) }()
	a.log.Info("gate: watching", "mounts", gc.Mounts, "opens", h.needs.Opens, "appraise", gc.Appraise.String(),
		"kernel_exec_cache", h.ignoreMarks, "kernel_open_cache", h.openMarks,
		"fail", map[bool]string{true: "closed", false: "open"}[gc.FailClosed])
	if gc.Ready != nil {
		close(gc.Ready)
	}
	return r, nil
}

// fileVersion is one version of a file: the kernel's measure-once key
// (inode plus i_version or ctime, ima-spec.md §4.5). i_version is not
// visible to user space; size, mtime and ctime in nanoseconds stand in,
// and a close after writing forgets every version of the inode (the
// kernel's ima_check_last_writer).
type fileVersion struct {
	fileKey
	size         int64
	mtime, ctime unix.Timespec
}

// versionInfo is what is known of one file version: the PCRs it was
// measured into and its appraisal result.
type versionInfo struct {
	measured  map[uint32]bool
	appraised bool
	appErr    error // nil: passed
}

// inodeInfo is the violation bookkeeping of one inode (ima-spec.md §5.1):
// the kernel's IMA_MUST_MEASURE and IMA_EMITTED_OPENWRITERS flags and the
// open counts the gate tracks from FAN_OPEN_PERM and FAN_CLOSE_*.
type inodeInfo struct {
	readers, writers int
	mustMeasure      bool
	emittedWriters   bool
}

// maxTracked bounds the inodes tracked; beyond it, idle ones are dropped.
const maxTracked = 1 << 16

type gateHandler struct {
	a     *Agent
	cfg   GateConfig
	log   *slog.Logger
	needs Needs

	mu       sync.Mutex
	versions map[fileKey]map[fileVersion]*versionInfo // by inode, so a close forgets them at once
	nvers    int
	inodes   map[fileKey]*inodeInfo
	execs    map[int]fileKey // thread -> file of its exec event, until its next open event
	// ignoreMarks: execs of measured files are left to the kernel's
	// ignore marks (gate.Event.Ignore); openMarks: so are the opens of
	// files on filesystems where no open matters (inert). ignored holds
	// the inodes marked and what for.
	ignoreMarks, openMarks bool
	ignored                map[fileKey]ignoreSet
	inert                  map[uint64]bool // by device: GatePolicy.FileCheckInert
	// fs holds the facts of each watched filesystem, by device. They are
	// kept for this gate only: its events come from the filesystems it
	// marked, each holding its device number while mounted, whereas an
	// anonymous device number (tmpfs, ramfs) goes to the next filesystem
	// mounted once one is unmounted.
	fs map[uint64]fsfacts.FS
	// closeWrites counts FAN_CLOSE_WRITE events: an ignore mark for a
	// decision made before a close after writing is not set (the close's
	// Unignore may have come first).
	closeWrites uint64
	tmpls       map[string]*ima.Template
	st          GateStats
}

// ignoreSet is what an inode's ignore mark covers.
type ignoreSet uint8

const (
	ignoreExec  ignoreSet = 1 << iota // FAN_OPEN_EXEC_PERM
	ignoreOpens                       // FAN_OPEN_PERM and FAN_CLOSE_NOWRITE
)

func (h *gateHandler) stats() GateStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st
}

func (h *gateHandler) count(p *uint64) {
	h.mu.Lock()
	*p++
	h.mu.Unlock()
}

var hashBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// prepared is what the fast phase found for an event, for the worker.
type prepared struct {
	st      unix.Stat_t
	v       Verdict
	ver     fileVersion
	in      *inodeInfo
	writers bool // the file is open for write now
	// tomtou: a ToMToU candidate, to confirm; openWriters: an open-writers
	// violation to list.
	tomtou, openWriters bool
	done                bool
	verdict             gate.Verdict
	// gen is closeWrites when the event was read.
	gen uint64
}

// Fast runs on the gate's reading thread: it gathers the facts, evaluates
// the policy, does the open-count bookkeeping and answers from the cache
// when it can. Only a file to hash or a violation to list goes to a worker.
func (h *gateHandler) Fast(ev *gate.Event) (gate.Verdict, bool) {
	p := h.prepare(ev)
	ev.State = p
	return p.verdict, p.done
}

// Decide answers one permission event: facts, policy, violations, measure,
// appraise. Internal errors allow the access (and are logged) unless an
// enforcing appraise rule applies, which then denies: an error must not
// open what appraisal would have closed.
func (h *gateHandler) Decide(ev *gate.Event) gate.Verdict {
	p, _ := ev.State.(*prepared)
	if p == nil {
		p = h.prepare(ev)
	}
	if p.done {
		return p.verdict
	}
	h.emitViolations(ev, p)
	if !p.v.Measure && !p.v.Appraise {
		return gate.Allow
	}
	denyOnError := p.v.Appraise && h.cfg.Appraise == AppraiseEnforce
	verdict, err := h.measureAppraise(ev, &p.st, p.ver, p.v, p.writers, p.gen)
	if err != nil {
		h.count(&h.st.Errors)
		h.log.Error("gate: measuring", "err", err, "deny", denyOnError)
		if denyOnError {
			return gate.Deny
		}
		return gate.Allow
	}
	return verdict
}

func (h *gateHandler) prepare(ev *gate.Event) *prepared {
	p := &prepared{done: true}
	st := &p.st
	if err := unix.Fstat(ev.Fd, st); err != nil {
		h.count(&h.st.Errors)
		h.log.Error("gate: fstat", "err", err)
		return p
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		h.count(&h.st.Skipped)
		return p
	}
	f := Facts{Hook: HookBPRM, Mask: fsfacts.MayExec, MaskKnown: true, FOwner: st.Uid, FGroup: st.Gid}
	key := fileKey{st.Dev, st.Ino}
	h.mu.Lock()
	p.gen = h.closeWrites
	h.mu.Unlock()
	var flags uint64
	flagsKnown := false
	if ev.Kind == gate.Exec && h.needs.Opens {
		// The FAN_OPEN_PERM of the exec's own open follows from the same
		// thread: remember it, to spare the /proc/<tid>/syscall read.
		h.mu.Lock()
		if len(h.execs) >= maxTracked {
			clear(h.execs) // threads that exited after an exec event
		}
		h.execs[ev.Pid] = key
		h.mu.Unlock()
	}
	if ev.Kind == gate.Open {
		f.Hook = HookFile
		h.mu.Lock()
		ek, execOpen := h.execs[ev.Pid]
		if execOpen {
			delete(h.execs, ev.Pid)
		}
		h.mu.Unlock()
		if h.openMarks && h.inertFS(ev.Fd, st.Dev) {
			// No open of this file can be measured, appraised or lead
			// to a violation, whoever opens it and how: allow, and leave
			// its opens to the kernel.
			h.ignore(ev, key, ignoreOpens, p.gen)
			return p
		}
		var (
			fl  uint64
			how fsfacts.How
			err error
		)
		if execOpen && ek == key {
			how = fsfacts.HowExec
		} else {
			fl, how, err = fsfacts.ReadOpenFlags(ev.Pid)
		}
		switch {
		case err == nil && how == fsfacts.HowExec:
			// The exec's own open: FILE_CHECK with MAY_EXEC (open_exec's
			// acc_mode); a read, as far as the counts go.
		case err == nil:
			f.Mask, flags, flagsKnown = fsfacts.FlagsAccess(fl), fl, true
		default:
			// io_uring, kernel workers, unknown calls: assume a read.
			f.Mask, f.MaskKnown = fsfacts.MayRead, false
			h.log.Debug("gate: open flags unknown; assuming MAY_READ", "pid", ev.Pid, "err", err)
		}
	}
	want := h.cfg.Policy.Wants(f.Hook, f.Mask)
	if want.FS {
		fs, err := h.readFS(ev.Fd, st.Dev)
		if err != nil {
			h.log.Warn("gate: filesystem facts", "err", err)
		}
		f.FS = fs
	}
	if want.Cred {
		c, err := fsfacts.ReadCred(ev.Pid)
		if err != nil {
			// The opener is gone (killed while waiting): allow.
			h.count(&h.st.Errors)
			h.log.Warn("gate: process credentials", "pid", ev.Pid, "err", err)
			return p
		}
		f.Cred = c
	}
	if want.Labels {
		f.SubjLabel, f.ObjLabel = fsfacts.ProcLabel(ev.Pid), fsfacts.FileLabel(ev.Fd)
	}
	p.v = h.cfg.Policy.Evaluate(&f)
	if h.cfg.Appraise == AppraiseOff {
		p.v.Appraise = false
	}
	p.ver = fileVersion{fileKey: key, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
	if f.Hook == HookFile && h.needs.Measure {
		h.violations(ev, p, flags, flagsKnown)
	}
	if p.tomtou || p.openWriters {
		p.done = false
		return p
	}
	if !p.v.Measure && !p.v.Appraise {
		return p
	}
	// The cache: this version measured into this PCR and appraised.
	// a.pcr is fixed once New returns; the reading thread must never wait
	// on a.mu (a commit holding it may open files on a watched filesystem,
	// which only this thread can answer).
	pcrIdx := h.a.pcr
	if p.v.PCR != 0 {
		pcrIdx = uint32(p.v.PCR)
	}
	h.mu.Lock()
	vi := h.version(p.ver)
	hit := vi != nil && (!p.v.Measure || vi.measured[pcrIdx]) && (!p.v.Appraise || vi.appraised)
	if hit {
		h.st.Cached++
	}
	h.mu.Unlock()
	if hit {
		p.verdict = h.appraisalVerdict(p.v, vi.appErr, ev)
		if p.verdict == gate.Allow {
			h.ignoreExecs(ev, p.ver.fileKey, p.v, nil, p.gen)
		}
		return p
	}
	p.done = false
	return p
}

// violations does ima_rdwr_violation_check's bookkeeping (ima-spec.md
// §5.1) for a FILE_CHECK open: the open counts, IMA_MUST_MEASURE and
// IMA_EMITTED_OPENWRITERS; it marks the violations to list in p.
func (h *gateHandler) violations(ev *gate.Event, p *prepared, flags uint64, known bool) {
	write := known && fsfacts.FlagsWrite(flags)
	var leaseOK bool
	if !write && p.v.Measure {
		// open_writers matters only under a measure rule (and the
		// answer decides whether the measurement may be cached).
		p.writers, leaseOK = fsfacts.OpenForWrite(ev.Fd)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	in := h.inode(p.ver.fileKey)
	p.in = in
	if write {
		// ToMToU: opened for write while readers of a measured file
		// remain; once per reader generation.
		if in.mustMeasure && in.readers > 0 {
			p.tomtou = true
		}
		in.writers++
		return
	}
	if !leaseOK {
		p.writers = in.writers > 0
	}
	if p.v.Measure {
		in.mustMeasure = true
		if p.writers && !in.emittedWriters {
			in.emittedWriters, p.openWriters = true, true
		}
	}
	in.readers++ // a read-only open (or the exec's own open) counts in i_readcount
}

// emitViolations lists the violations prepare found; a ToMToU candidate is
// confirmed first (the counts can drift when close events merge): some
// process must hold the file open read-only.
func (h *gateHandler) emitViolations(ev *gate.Event, p *prepared) {
	if p.tomtou {
		if h.readersExist(p.ver.fileKey) {
			h.mu.Lock()
			p.in.mustMeasure = false
			h.mu.Unlock()
			h.violation(ev, "ToMToU")
		} else {
			h.mu.Lock()
			p.in.readers = 0
			h.mu.Unlock()
		}
	}
	if p.openWriters {
		h.violation(ev, "open_writers")
	}
}

// version returns what is known of ver. Called with h.mu held.
func (h *gateHandler) version(ver fileVersion) *versionInfo {
	return h.versions[ver.fileKey][ver]
}

// inode returns key's bookkeeping, creating it. Called with h.mu held.
func (h *gateHandler) inode(key fileKey) *inodeInfo {
	in := h.inodes[key]
	if in == nil {
		if len(h.inodes) >= maxTracked {
			for k, v := range h.inodes {
				if v.readers == 0 && v.writers == 0 {
					delete(h.inodes, k)
				}
			}
		}
		in = &inodeInfo{}
		h.inodes[key] = in
	}
	return in
}

// Closed updates the open counts; a close after writing forgets the
// measured versions of the inode (ima_check_last_writer).
func (h *gateHandler) Closed(ev *gate.Event) {
	var st unix.Stat_t
	if err := unix.Fstat(ev.Fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	key := fileKey{st.Dev, st.Ino}
	h.mu.Lock()
	defer h.mu.Unlock()
	in := h.inodes[key]
	if ev.Mask&unix.FAN_CLOSE_WRITE != 0 {
		h.closeWrites++
		if _, ok := h.ignored[key]; ok {
			delete(h.ignored, key)
			if err := ev.Unignore(); err != nil {
				h.log.Error("gate: exec cache", "err", err)
			}
		}
		h.nvers -= len(h.versions[key])
		delete(h.versions, key)
		if in != nil && in.writers > 0 {
			in.writers--
		}
		if in != nil && in.writers == 0 {
			in.emittedWriters = false
		}
	}
	if ev.Mask&unix.FAN_CLOSE_NOWRITE != 0 && in != nil && in.readers > 0 {
		in.readers--
	}
	if in != nil && in.readers == 0 && in.writers == 0 && !in.mustMeasure {
		delete(h.inodes, key)
	}
}

// readersExist scans /proc/*/fd for a read-only open of key by a process
// other than the agent (the opener's new fd is not installed yet).
// It runs only on a ToMToU candidate.
func (h *gateHandler) readersExist(key fileKey) bool {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	self := os.Getpid()
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			var st unix.Stat_t
			if unix.Stat(dir+fd.Name(), &st) != nil || st.Dev != key.dev || st.Ino != key.ino {
				continue
			}
			info, err := os.ReadFile("/proc/" + p.Name() + "/fdinfo/" + fd.Name())
			if err != nil {
				continue
			}
			if fdinfoReadOnly(info) {
				return true
			}
		}
	}
	return false
}

// fdinfoReadOnly reports whether an fdinfo's flags: line (octal) has
// O_ACCMODE == O_RDONLY.
func fdinfoReadOnly(info []byte) bool {
	for line := range bytes.Lines(info) {
		if v, ok := bytes.CutPrefix(line, []byte("flags:")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 64)
			return err == nil && n&3 == 0
		}
	}
	return false
}

// violation lists a violation entry for the event's file (ima-spec.md §5.2).
func (h *gateHandler) violation(ev *gate.Event, cause string) {
	var st unix.Stat_t
	if err := unix.Fstat(ev.Fd, &st); err != nil {
		return
	}
	name := fdName(ev.Fd)
	h.count(&h.st.Violations)
	h.log.Warn("gate: violation", "cause", cause, "name", name, "pid", ev.Pid)
	if err := h.a.addViolation(ev.Fd, name, &st); err != nil {
		h.log.Error("gate: listing a violation", "err", err)
	}
}

// measureAppraise measures (once per file version and PCR) and appraises
// (once per file version) the event's file.
func (h *gateHandler) measureAppraise(ev *gate.Event, st *unix.Stat_t, ver fileVersion, v Verdict, writers bool, gen uint64) (gate.Verdict, error) {
	tmpl, hashAlg, pcrIdx := h.a.params()
	if v.Template != "" {
		t, err := h.template(v.Template)
		if err != nil {
			return gate.Allow, err
		}
		tmpl = t
	}
	if v.PCR != 0 {
		pcrIdx = uint32(v.PCR)
	}
	h.mu.Lock()
	vi := h.version(ver)
	needMeasure := v.Measure && (vi == nil || !vi.measured[pcrIdx])
	needAppraise := v.Appraise && (vi == nil || !vi.appraised)
	var cachedErr error
	if vi != nil {
		cachedErr = vi.appErr
	}
	if !needMeasure && !needAppraise {
		h.st.Cached++
		h.mu.Unlock()
		return h.appraisalVerdict(v, cachedErr, ev), nil
	}
	h.mu.Unlock()

	// Hash through the event's own fd (pread: no events, no offset shared
	// with anyone). security.ima names the algorithm (ima-spec.md §3.5).
	value := fgetxattr(ev.Fd, "security.ima")
	alg := hashAlg
	if !tmpl.IsLegacy() {
		alg = xattrHashAlg(value, hashAlg)
	}
	ev2 := &event{Name: fdName(ev.Fd), File: true, UID: st.Uid, GID: st.Gid, Mode: uint16(st.Mode), Alg: alg}
	ev2.Sig, ev2.EVMSig = fdSigFields(ev.Fd, value)
	bp := hashBufs.Get().(*[]byte)
	err := hashFD(ev.Fd, ev2, needsD(tmpl), *bp)
	hashBufs.Put(bp)
	if err != nil {
		return gate.Allow, fmt.Errorf("hashing %s: %w", ev2.Name, err)
	}
	h.count(&h.st.Hashed)
	var after unix.Stat_t
	stable := !writers && unix.Fstat(ev.Fd, &after) == nil && after.Size == st.Size && after.Mtim == st.Mtim && after.Ctim == st.Ctim

	if needMeasure {
		e, err := buildEntry(tmpl, ev2, pcrIdx, h.a.order)
		if err != nil {
			return gate.Allow, err
		}
		h.a.mu.Lock()
		_, err = h.a.addLocked(e)
		h.a.mu.Unlock()
		if err != nil {
			return gate.Allow, err
		}
	}
	appErr := cachedErr
	if needAppraise {
		appErr = digsig.Appraise(value, ima.Digest{Alg: ev2.Alg, Sum: ev2.Digest}, h.cfg.Keyring, v.Require)
		if appErr != nil && h.cfg.Appraise == AppraiseFix && fixable(value) {
			if nv, err := digsig.DigestValue(ima.Digest{Alg: ev2.Alg, Sum: ev2.Digest}); err == nil {
				if err := unix.Fsetxattr(ev.Fd, "security.ima", nv, 0); err != nil {
					h.log.Error("gate: fix: writing security.ima", "name", ev2.Name, "err", err)
				} else {
					h.count(&h.st.Fixed)
					h.log.Info("gate: fix: wrote security.ima", "name", ev2.Name, "value", fmt.Sprintf("%x", nv))
					appErr = digsig.Appraise(nv, ima.Digest{Alg: ev2.Alg, Sum: ev2.Digest}, h.cfg.Keyring, v.Require)
				}
			}
		}
	}
	if stable {
		h.mu.Lock()
		vi := h.version(ver)
		if vi == nil {
			if h.nvers >= maxTracked {
				clear(h.versions)
				h.nvers = 0
			}
			vi = &versionInfo{measured: map[uint32]bool{}}
			m := h.versions[ver.fileKey]
			if m == nil {
				m = map[fileVersion]*versionInfo{}
				h.versions[ver.fileKey] = m
			}
			m[ver] = vi
			h.nvers++
		}
		if needMeasure {
			vi.measured[pcrIdx] = true
		}
		if needAppraise {
			vi.appraised, vi.appErr = true, appErr
		}
		h.mu.Unlock()
	}
	verdict := h.appraisalVerdict(v, appErr, ev)
	if stable && verdict == gate.Allow {
		h.ignoreExecs(ev, ver.fileKey, v, tmpl, gen)
	}
	return verdict, nil
}

// ignoreExecs asks the kernel to stop reporting execs of an exec event's
// file until it is modified, when the decision allows it (Needs.
// ExecCacheable, no appraisal, a template without fields that change
// without a write). Under a policy with FILE_CHECK rules that is done only
// on an inert filesystem (GatePolicy.FileCheckInert), whose opens are
// ignored too: every event of a cached exec is then the kernel's. tmpl is
// the template the entry used (nil: look it up); gen is closeWrites when
// the event was read.
func (h *gateHandler) ignoreExecs(ev *gate.Event, key fileKey, v Verdict, tmpl *ima.Template, gen uint64) {
	if !h.ignoreMarks || ev.Kind != gate.Exec || v.Appraise {
		return
	}
	what := ignoreExec
	if h.needs.Opens {
		if !h.openMarks || !h.inertFS(ev.Fd, key.dev) {
			return
		}
		what |= ignoreOpens
	}
	if v.Template != "" {
		if tmpl == nil {
			t, err := h.template(v.Template)
			if err != nil {
				return
			}
			tmpl = t
		}
		if !ignorableTemplate(tmpl) {
			return
		}
	}
	h.ignore(ev, key, what, gen)
}

// ignore sets an ignore mark for what on the event's inode, unless a close
// after writing was seen since the event was read (gen): its Unignore may
// have run before the mark is set, which would leave a changed file's
// events ignored. h.mu is held while marking, so that Closed cannot run in
// between.
func (h *gateHandler) ignore(ev *gate.Event, key fileKey, what ignoreSet, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	have := h.ignored[key]
	if have&what == what || h.closeWrites != gen {
		return
	}
	var kinds []gate.Kind
	if what&ignoreExec != 0 {
		kinds = append(kinds, gate.Exec)
	}
	if what&ignoreOpens != 0 {
		kinds = append(kinds, gate.Open, gate.CloseNoWrite)
	}
	flushed, err := ev.Ignore(kinds...)
	if flushed {
		clear(h.ignored)
		have = 0
	}
	if err != nil {
		h.log.Warn("gate: kernel cache", "err", err)
		return
	}
	h.ignored[key] = have | what
}

// inertFS reports GatePolicy.FileCheckInert for the filesystem of device
// dev (fd is a file on it), cached per device.
func (h *gateHandler) inertFS(fd int, dev uint64) bool {
	h.mu.Lock()
	v, ok := h.inert[dev]
	h.mu.Unlock()
	if ok {
		return v
	}
	var fs fsfacts.FS
	if h.needs.FS {
		var err error
		if fs, err = h.readFS(fd, dev); err != nil {
			return false
		}
	}
	v = h.cfg.Policy.FileCheckInert(fs)
	h.mu.Lock()
	if len(h.inert) >= maxTracked {
		clear(h.inert)
	}
	h.inert[dev] = v
	h.mu.Unlock()
	return v
}

// readFS returns the facts of the filesystem of device dev (fd is a file
// on it), cached per device for this gate (see gateHandler.fs).
func (h *gateHandler) readFS(fd int, dev uint64) (fsfacts.FS, error) {
	h.mu.Lock()
	fs, ok := h.fs[dev]
	h.mu.Unlock()
	if ok {
		return fs, nil
	}
	fs, err := fsfacts.ReadFS(fd, dev)
	if err != nil {
		return fs, err
	}
	h.mu.Lock()
	if h.fs == nil || len(h.fs) >= maxTracked {
		h.fs = map[uint64]fsfacts.FS{}
	}
	h.fs[dev] = fs
	h.mu.Unlock()
	return fs, nil
}

// ignorableTemplate: a template whose fields change only with the file's
// content (the signature, owner and mode fields change without a write).
func ignorableTemplate(t *ima.Template) bool {
	for _, id := range t.Fields {
		switch id {
		case ima.FieldD, ima.FieldN, ima.FieldDNG, ima.FieldDNGv2, ima.FieldNNG, ima.FieldBuf:
		default:
			return false
		}
	}
	return true
}

// fixable: ima_appraise=fix rewrites a missing or hash value, never a
// signature.
func fixable(value []byte) bool {
	return len(value) == 0 || !digsig.Type(value[0]).IsSignature()
}

func (h *gateHandler) appraisalVerdict(v Verdict, appErr error, ev *gate.Event) gate.Verdict {
	if !v.Appraise || appErr == nil {
		return gate.Allow
	}
	h.mu.Lock()
	h.st.AppraiseFailed++
	deny := h.cfg.Appraise == AppraiseEnforce
	if deny {
		h.st.Denied++
	}
	h.mu.Unlock()
	h.log.Warn("gate: appraisal failed", "name", fdName(ev.Fd), "pid", ev.Pid, "err", appErr,
		"mode", h.cfg.Appraise.String(), "deny", deny)
	if deny {
		return gate.Deny
	}
	return gate.Allow
}

func (h *gateHandler) template(name string) (*ima.Template, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.tmpls[name]; ok {
		return t, nil
	}
	t, err := ima.LookupTemplate(name)
	if err != nil {
		return nil, err
	}
	h.tmpls[name] = t
	return t, nil
}

// params returns the template, hash and PCR the list is kept with (set at
// initialisation, which may happen while the gate runs).
func (a *Agent) params() (*ima.Template, ima.HashAlg, uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tmpl, a.hash, a.pcr
}

// addLocked lists e (the gate's measurement). Called with a.mu held.
func (a *Agent) addLocked(e *ima.Entry) (string, error) {
	switch a.state {
	case Failed:
		return "", a.failErr
	case Starting:
		return "", errors.New("agent: not started")
	}
	return a.add(e)
}

// addViolation lists a violation entry for the file open as fd
// (ima-spec.md §5.2): the current template, the digest fields zeroed, the
// other fields normal, a zero template digest (0xFF extended), PCR the
// agent's, no duplicate check.
func (a *Agent) addViolation(fd int, name string, st *unix.Stat_t) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	value := fgetxattr(fd, "security.ima")
	ev := &event{Name: name, File: true, UID: st.Uid, GID: st.Gid, Mode: uint16(st.Mode),
		Alg: a.hash, Digest: make([]byte, a.hash.Size()), D: make([]byte, 20)}
	ev.Sig, ev.EVMSig = fdSigFields(fd, value)
	e, err := buildEntry(a.tmpl, ev, a.pcr, a.order)
	if err != nil {
		return err
	}
	e.Digest = make([]byte, 20)
	switch a.state {
	case Deferred:
		rec, err := appendBinary(nil, e, e.Digest, a.order)
		if err != nil {
			return err
		}
		if err := a.pending.Append(rec); err != nil {
			return err
		}
		a.queued++
		return nil
	case Initialised, Bypass:
		return a.commit(e)
	case Failed:
		return a.failErr
	}
	return fmt.Errorf("agent: cannot list a violation while %s", a.state)
}

// fdName is the name listed for an open file: its path as /proc/self/fd
// shows it (d_path; " (deleted)" for an unlinked file, as the kernel's
// n-ng shows it).
func fdName(fd int) string {
	name, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return name
}

// fgetxattr returns the attribute of an open file, nil if it has none or
// cannot be read.
func fgetxattr(fd int, name string) []byte {
	v, err := xattr.FDGet(fd, name)
	if err != nil || len(v) == 0 {
		return nil
	}
	return v
}

// fdSigFields is sigFields for an open file whose security.ima is imaValue.
func fdSigFields(fd int, imaValue []byte) (sig, evmsig []byte) {
	return sigFieldsOf(imaValue, fgetxattr(fd, "security.evm"))
}

// xattrHashAlg is fileHashAlg for a security.ima value: the kernel's choice
// (digsig.HashAlgOf), if imago can compute it.
func xattrHashAlg(v []byte, def ima.HashAlg) ima.HashAlg {
	if alg := digsig.HashAlgOf(v, def); alg.New() != nil {
		return alg
	}
	return def
}

// preader reads an fd with pread from its own offset.
type preader struct {
	fd  int
	off int64
}

func (r *preader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Pread(r.fd, p, r.off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		r.off += int64(n)
		return n, nil
	}
}

// hashFD is hashFile through pread on fd.
func hashFD(fd int, ev *event, wantD bool, buf []byte) error {
	return hashReader(&preader{fd: fd}, ev, wantD, buf)
}

// LoadKeyring reads every file in dir (PEM or DER x509 certificates or
// public keys) into a keyring, as the kernel's .ima keyring would hold them.
func LoadKeyring(dir string) (*digsig.Keyring, error) {
	k := &digsig.Keyring{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("agent: keyring: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("agent: keyring: %w", err)
		}
		if _, err := k.Add(data); err != nil {
			return nil, fmt.Errorf("agent: keyring: %s: %w", p, err)
		}
	}
	return k, nil
}
