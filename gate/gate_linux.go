//go:build linux

package gate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Gate is a running fanotify gate.
type Gate struct {
	cfg      Config
	fd       int // the fanotify group (non-blocking)
	wake     int // eventfd that stops the reading thread
	fast     FastDecider
	audit    bool
	tid      bool // FAN_REPORT_TID: Event.Pid is a thread id
	marks    map[string]string
	self     int
	queue    chan *pending
	ignMu    sync.Mutex
	ignoredN int
	// closeMu guards closing fd against late answers (a timer firing
	// after Run returned).
	closeMu sync.RWMutex
	closed  bool

	events, allowed, denied, selfN, full, timedOut, closes, overflows, fastN, fastT, busy, ignored atomic.Uint64
}

// pending is a permission event on its way to an answer.
type pending struct {
	ev       Event
	mu       sync.Mutex // held while answering, so the fd outlives the answer
	answered bool
	timer    *time.Timer
}

// answer answers p once; it reports whether this call did. count, if
// set, is incremented before the answer is written (so that whoever sees
// the answer sees the count).
func (g *Gate) answer(p *pending, v Verdict, count *atomic.Uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answered {
		return false
	}
	p.answered = true
	if count != nil {
		count.Add(1)
	}
	g.respond(p.ev.Fd, v)
	return true
}

const metaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

// New creates the fanotify group and marks cfg.Mounts. It returns an error
// wrapping ErrNotSupported when the kernel or the process's privileges do
// not allow permission events.
func New(cfg Config) (*Gate, error) {
	cfg.setDefaults()
	if cfg.Handler == nil {
		return nil, errors.New("gate: no handler")
	}
	if len(cfg.Mounts) == 0 {
		return nil, errors.New("gate: no filesystem to watch")
	}
	flags := uint(unix.FAN_CLASS_CONTENT | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_UNLIMITED_QUEUE)
	if cfg.Opens {
		// The opener's thread, whose /proc/<tid>/syscall holds the open's
		// flags. Exec events need only the process.
		flags |= unix.FAN_REPORT_TID
	}
	evFlags := uint(unix.O_RDONLY | unix.O_LARGEFILE | unix.O_CLOEXEC)
	audit := true
	fd, err := unix.FanotifyInit(flags|unix.FAN_ENABLE_AUDIT, evFlags)
	if err != nil {
		audit = false
		fd, err = unix.FanotifyInit(flags, evFlags)
	}
	if err != nil {
		switch err {
		case unix.ENOSYS, unix.EINVAL, unix.EPERM:
			return nil, fmt.Errorf("%w: fanotify_init: %v", ErrNotSupported, err)
		}
		return nil, fmt.Errorf("gate: fanotify_init: %w", err)
	}
	g := &Gate{cfg: cfg, audit: audit, tid: cfg.Opens, marks: map[string]string{}, self: os.Getpid(),
		queue: make(chan *pending, cfg.Queue)}
	mask := uint64(unix.FAN_OPEN_EXEC_PERM)
	if cfg.Opens {
		mask |= unix.FAN_OPEN_PERM
	}
	if cfg.Closes {
		mask |= unix.FAN_CLOSE_WRITE | unix.FAN_CLOSE_NOWRITE
	}
	if cfg.CloseWrites {
		mask |= unix.FAN_CLOSE_WRITE
	}
	for _, m := range cfg.Mounts {
		err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, unix.AT_FDCWD, m)
		kind := "filesystem"
		if err != nil {
			err = unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, mask, unix.AT_FDCWD, m)
			kind = "mount"
		}
		if err != nil {
			unix.Close(fd)
			if err == unix.EINVAL {
				return nil, fmt.Errorf("%w: fanotify_mark %s: %v", ErrNotSupported, m, err)
			}
			return nil, fmt.Errorf("gate: marking %s: %w", m, err)
		}
		g.marks[m] = kind
		cfg.Logger.Info("gate: marked", "path", m, "mark", kind)
	}
	g.fd = fd
	if g.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("gate: eventfd: %w", err)
	}
	g.fast, _ = cfg.Handler.(FastDecider)
	return g, nil
}

// Marks returns each marked path with its mark type ("filesystem" or
// "mount").
func (g *Gate) Marks() map[string]string { return g.marks }

// Stats returns the gate's counters.
func (g *Gate) Stats() Stats {
	return Stats{Events: g.events.Load(), Allowed: g.allowed.Load(), Denied: g.denied.Load(),
		Self: g.selfN.Load(), QueueFull: g.full.Load(), TimedOut: g.timedOut.Load(),
		Closes: g.closes.Load(), Overflows: g.overflows.Load(), Fast: g.fastN.Load(),
		ReaderBusy: time.Duration(g.busy.Load()), FastTime: time.Duration(g.fastT.Load()),
		Ignored: g.ignored.Load()}
}

// Run reads and answers events until ctx is done, then closes the group
// (the kernel allows whatever is still pending) and returns nil; it returns
// an error if reading fails.
func (g *Gate) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range g.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range g.queue {
				g.decide(p)
			}
		}()
	}
	done, woke := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(woke)
		select {
		case <-ctx.Done():
		case <-done:
		}
		var one = [8]byte{1}
		unix.Write(g.wake, one[:]) // wake the reading thread
	}()
	errc := make(chan error, 1)
	procs := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(procs + 1) // the reading thread holds one (see wait)
	defer runtime.GOMAXPROCS(procs)
	go func() {
		// The reading thread waits in ppoll(2) itself rather than in Go's
		// network poller: the kernel wakes it directly, which keeps the
		// round trip of a cached decision short.
		// Unlock before leaving: a goroutine that exits locked takes its
		// thread down, and a child started from that thread with
		// Pdeathsig (as tests start swtpm) would be killed with it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- g.read()
	}()
	err := <-errc
	close(done)
	<-woke
	close(g.queue)
	wg.Wait()
	st := g.Stats()
	g.cfg.Logger.Info("gate: stopped", "events", st.Events, "allowed", st.Allowed, "denied", st.Denied,
		"fast", st.Fast, "self", st.Self, "queue_full", st.QueueFull, "timed_out", st.TimedOut,
		"closes", st.Closes,
		"fast_decision_us", float64(st.FastTime.Nanoseconds())/1e3/float64(max(st.Fast, 1)),
		"reader_busy_us_per_event", float64(st.ReaderBusy.Nanoseconds())/1e3/float64(max(st.Events, 1)))
	g.closeMu.Lock()
	unix.Close(g.fd)
	unix.Close(g.wake)
	g.closed = true
	g.closeMu.Unlock()
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

var errStopped = errors.New("gate: stopped")

// pollSlice bounds each raw wait, so that a stop-the-world never waits
// longer than this on the reading thread (a preemption signal normally
// interrupts the wait at once: ppoll is never restarted).
const pollSlice = 20 * time.Millisecond

// wait waits for events with a raw ppoll(2), one that keeps the thread's P.
// A blocking system call through the runtime's entersyscall hands the P
// away after a while, and getting one back when the event arrives cost
// about 40 us per event on the test machine, twice the kernel's whole
// round trip; Run adds a P to GOMAXPROCS for the one held here.
func (g *Gate) wait(pfd []unix.PollFd) (int, error) {
	ts := unix.NsecToTimespec(int64(pollSlice))
	r, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd[0])), uintptr(len(pfd)),
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	switch e {
	case 0:
		return int(r), nil
	case unix.EINTR:
		return 0, nil
	}
	return 0, fmt.Errorf("gate: ppoll: %w", e)
}

func (g *Gate) read() error {
	buf := make([]byte, 64<<10)
	pfd := []unix.PollFd{{Fd: int32(g.fd), Events: unix.POLLIN}, {Fd: int32(g.wake), Events: unix.POLLIN}}
	for {
		if n, err := g.wait(pfd); err != nil {
			return err
		} else if n == 0 {
			continue
		}
		if pfd[1].Revents != 0 {
			return errStopped
		}
		if pfd[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(g.fd, buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("gate: reading events: %w", err)
		}
		t0 := time.Now()
		for off := 0; off+metaSize <= n; {
			m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
			if m.Event_len < uint32(metaSize) || off+int(m.Event_len) > n {
				return fmt.Errorf("gate: bad event length %d at offset %d", m.Event_len, off)
			}
			if m.Vers != unix.FANOTIFY_METADATA_VERSION {
				return fmt.Errorf("gate: fanotify metadata version %d, want %d", m.Vers, unix.FANOTIFY_METADATA_VERSION)
			}
			g.dispatch(m.Mask, int(m.Fd), int(m.Pid))
			off += int(m.Event_len)
		}
		g.busy.Add(uint64(time.Since(t0)))
	}
}

func (g *Gate) dispatch(mask uint64, fd, pid int) {
	g.events.Add(1)
	if mask&unix.FAN_Q_OVERFLOW != 0 || fd == unix.FAN_NOFD {
		g.overflows.Add(1)
		g.cfg.Logger.Error("gate: fanotify queue overflow: close events were lost; open counts may be wrong")
		return
	}
	const perm = unix.FAN_OPEN_PERM | unix.FAN_OPEN_EXEC_PERM
	if mask&perm == 0 {
		g.closes.Add(1)
		ev := Event{Kind: CloseNoWrite, Fd: fd, Pid: pid, Mask: mask, Received: time.Now(), g: g}
		if mask&unix.FAN_CLOSE_WRITE != 0 {
			ev.Kind = CloseWrite
		}
		if pid != g.self && !g.isSelf(pid) {
			g.cfg.Handler.Closed(&ev)
		}
		unix.Close(fd)
		return
	}
	if g.isSelf(pid) {
		// The agent's own opens (its state files may live on a marked
		// filesystem): allowed at once, never queued behind itself.
		g.selfN.Add(1)
		g.respond(fd, Allow)
		unix.Close(fd)
		return
	}
	p := &pending{ev: Event{Kind: Open, Fd: fd, Pid: pid, Mask: mask, Received: time.Now(), g: g}}
	if mask&unix.FAN_OPEN_EXEC_PERM != 0 {
		p.ev.Kind = Exec
	}
	if g.fast != nil {
		if v, ok := g.fast.Fast(&p.ev); ok {
			g.fastN.Add(1)
			g.fastT.Add(uint64(time.Since(p.ev.Received)))
			g.respond(fd, v)
			unix.Close(fd)
			return
		}
	}
	p.timer = time.AfterFunc(g.cfg.Timeout, func() {
		v := g.cfg.failVerdict()
		if g.answer(p, v, &g.timedOut) {
			g.cfg.Logger.Error("gate: no decision in time; answered by the failure policy",
				"timeout", g.cfg.Timeout, "verdict", v.String(), "kind", p.ev.Kind.String(), "pid", pid)
		}
	})
	select {
	case g.queue <- p:
	default:
		p.timer.Stop()
		v := g.cfg.failVerdict()
		g.cfg.Logger.Error("gate: queue full; answering by the failure policy",
			"queue", g.cfg.Queue, "verdict", v.String(), "kind", p.ev.Kind.String(), "pid", pid)
		g.answer(p, v, &g.full)
		unix.Close(fd)
	}
}

// MaxIgnored bounds the inodes the gate asks the kernel to stop reporting
// execs of (each is an inode mark); past it the marks are flushed and the
// cache starts again.
const MaxIgnored = 16384

// IgnoreExecs asks the kernel to stop reporting execs of the event's inode
// until the inode is modified: Ignore(Exec).
func (ev *Event) IgnoreExecs() (flushed bool, err error) { return ev.Ignore(Exec) }

// Ignore asks the kernel to stop reporting the event's inode's events of
// the given kinds (Exec, Open, CloseNoWrite; CloseWrite is always
// reported) until the inode is modified: an ignore mask
// (FAN_MARK_IGNORED_MASK, without FAN_MARK_IGNORED_SURV_MODIFY) on the
// inode, which the kernel clears on the next write or truncate
// (FS_MODIFY). A cached exec then costs what the kernel's own cached check
// costs, nothing of the gate's.
//
// Use Exec only for a decision that depends on nothing but the file's
// content and filesystem (not on the process, the owner or the xattrs,
// which change without FS_MODIFY), and Open and CloseNoWrite only where no
// open of the inode can matter, whoever opens it and how (a write open
// included: its FAN_OPEN_PERM is ignored too). Use it with
// Config.CloseWrites, calling Unignore on every FAN_CLOSE_WRITE of an
// ignored inode: writes through a shared mapping raise no FS_MODIFY, but
// their file's last close does raise FAN_CLOSE_WRITE, which is where the
// kernel's IMA notices them too.
//
// flushed reports that the marks were flushed first (MaxIgnored): every
// inode ignored before is reported again.
func (ev *Event) Ignore(kinds ...Kind) (flushed bool, err error) {
	g := ev.g
	if g == nil {
		return false, ErrNotSupported
	}
	var mask uint64
	for _, k := range kinds {
		switch k {
		case Exec:
			mask |= unix.FAN_OPEN_EXEC_PERM
		case Open:
			mask |= unix.FAN_OPEN_PERM
		case CloseNoWrite:
			mask |= unix.FAN_CLOSE_NOWRITE
		default:
			return false, fmt.Errorf("gate: cannot ignore %s events", k)
		}
	}
	if mask == 0 {
		return false, nil
	}
	g.ignMu.Lock()
	defer g.ignMu.Unlock()
	if g.ignoredN >= MaxIgnored {
		// Without FAN_MARK_MOUNT or FAN_MARK_FILESYSTEM, a flush removes
		// the inode marks only: the ignore marks.
		if err := unix.FanotifyMark(g.fd, unix.FAN_MARK_FLUSH, 0, unix.AT_FDCWD, ""); err != nil {
			return false, fmt.Errorf("gate: flushing ignore marks: %w", err)
		}
		g.ignoredN, flushed = 0, true
	}
	if err := unix.FanotifyMark(g.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORED_MASK, mask, ev.Fd, ""); err != nil {
		return flushed, fmt.Errorf("gate: ignore mark: %w", err)
	}
	g.ignoredN++
	g.ignored.Add(1)
	return flushed, nil
}

// ignorable is every event kind Ignore can set.
const ignorable = unix.FAN_OPEN_EXEC_PERM | unix.FAN_OPEN_PERM | unix.FAN_CLOSE_NOWRITE

// Unignore removes the event's inode's ignore mask (after Ignore), so that
// its next events are reported again.
func (ev *Event) Unignore() error {
	if ev.g == nil {
		return ErrNotSupported
	}
	err := unix.FanotifyMark(ev.g.fd, unix.FAN_MARK_REMOVE|unix.FAN_MARK_IGNORED_MASK, ignorable, ev.Fd, "")
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("gate: removing an ignore mark: %w", err)
	}
	return nil
}

// isSelf reports whether thread tid belongs to this process: tgkill with
// signal 0 fails with ESRCH for a thread of another thread group.
func (g *Gate) isSelf(tid int) bool {
	if tid == g.self {
		return true
	}
	return g.tid && unix.Tgkill(g.self, tid, 0) == nil
}

// decide runs the handler; a handler that panics still gets its event
// answered (by the failure policy) before the panic goes on.
func (g *Gate) decide(p *pending) {
	v := g.cfg.failVerdict()
	defer func() {
		p.timer.Stop()
		g.answer(p, v, nil) // after a timeout: waits for the timer's answer to be written
		unix.Close(p.ev.Fd)
	}()
	v = g.cfg.Handler.Decide(&p.ev)
}

func (g *Gate) respond(fd int, v Verdict) {
	r := unix.FanotifyResponse{Fd: int32(fd), Response: unix.FAN_ALLOW}
	if v == Deny {
		r.Response = unix.FAN_DENY
		if g.audit {
			r.Response |= unix.FAN_AUDIT
		}
		g.denied.Add(1)
	} else {
		g.allowed.Add(1)
	}
	b := (*[unsafe.Sizeof(r)]byte)(unsafe.Pointer(&r))[:]
	g.closeMu.RLock()
	err := errStopped
	if !g.closed {
		_, err = unix.Write(g.fd, b) // one write(2) per answer: atomic
	}
	g.closeMu.RUnlock()
	if err != nil {
		g.cfg.Logger.Error("gate: writing the answer failed", "fd", fd, "err", err)
	}
}
