//go:build linux

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/fsfacts"
)

// The gate (package gate) holds opens and execs on watched filesystems
// until the agent has evaluated the policy, measured, appended, extended
// and, under an appraise rule, appraised the file: IMA's "measure before
// use" (ima-spec.md §8.7) in user space. This file wires it to the agent.

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

// StartGate marks gc.Mounts and answers their events until ctx is done.
func (a *Agent) StartGate(ctx context.Context, gc GateConfig) (*RunningGate, error) {
	if gc.Policy == nil {
		return nil, errors.New("agent: the gate needs a policy")
	}
	if gc.Keyring == nil {
		gc.Keyring = &digsig.Keyring{}
	}
	h := &gateHandler{a: a, ctx: ctx, cfg: gc, log: a.log, needs: gc.Policy.Needs(),
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
	go func() {
		err := g.Run(ctx)
		if ctx.Err() == nil {
			// The gate stopped on its own: the kernel now allows every
			// access unmeasured. The agent must not look healthy: it
			// stops, non-zero, and says why (systemd restarts it).
			if err == nil {
				err = errors.New("gate: stopped")
			}
			a.setFatal(fmt.Errorf("%w: %w", ErrGateStopped, err))
		}
		r.done <- err
	}()
	a.log.Info("gate: watching", "mounts", gc.Mounts, "opens", h.needs.Opens, "appraise", gc.Appraise.String(),
		"kernel_exec_cache", h.ignoreMarks, "kernel_open_cache", h.openMarks,
		"fail", map[bool]string{true: "closed", false: "open"}[gc.FailClosed])
	if gc.Ready != nil {
		close(gc.Ready)
	}
	return r, nil
}

type gateHandler struct {
	a     *Agent
	ctx   context.Context // the gate's: done when it stops
	cfg   GateConfig
	log   *slog.Logger
	needs Needs

	mu     sync.Mutex
	inodes inodeTable
	// execs maps a thread to the file of its exec event, until its next
	// open event (at most maxTracked threads, the oldest forgotten).
	execs lru[int, fileKey]
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

// prepared is what the fast phase found for an event, for the worker.
type prepared struct {
	st      unix.Stat_t
	v       Verdict
	ver     fileVersion
	in      *inodeEntry
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
		if k, ok := h.execs.get(ev.Pid); ok {
			*k = key
		} else {
			if h.execs.len() >= maxTracked {
				h.execs.removeOldest() // a thread that exited after an exec event
			}
			*h.execs.add(ev.Pid) = key
		}
		h.mu.Unlock()
	}
	if ev.Kind == gate.Open {
		f.Hook = HookFile
		h.mu.Lock()
		var ek fileKey
		k, execOpen := h.execs.peek(ev.Pid)
		if execOpen {
			ek = *k
			h.execs.remove(ev.Pid)
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
	p.ver = fileVersion{fileKey: key, fileState: statInfo(st).state}
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
