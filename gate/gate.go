package gate

import (
	"errors"
	"log/slog"
	"time"
)

// ErrNotSupported: fanotify permission events are not available (not
// Linux, a kernel without CONFIG_FANOTIFY_ACCESS_PERMISSIONS, or no
// CAP_SYS_ADMIN).
var ErrNotSupported = errors.New("gate: fanotify permission events are not supported here")

// Kind is what an event reports.
type Kind uint8

const (
	// Exec: FAN_OPEN_EXEC_PERM, the open of a file for execve (BPRM_CHECK).
	Exec Kind = iota + 1
	// Open: FAN_OPEN_PERM, any open (FILE_CHECK). An exec raises both.
	Open
	// CloseWrite: FAN_CLOSE_WRITE, a file open for write was closed.
	CloseWrite
	// CloseNoWrite: FAN_CLOSE_NOWRITE, a file open without write was closed.
	CloseNoWrite
)

func (k Kind) String() string {
	switch k {
	case Exec:
		return "exec"
	case Open:
		return "open"
	case CloseWrite:
		return "close_write"
	case CloseNoWrite:
		return "close_nowrite"
	}
	return "unknown"
}

// Event is one fanotify event.
type Event struct {
	Kind Kind
	// Fd is the event's file, opened read-only by fanotify for the gate
	// (reads through it raise no events). It is valid until the Handler
	// returns and is closed by the gate.
	Fd int
	// Pid is the thread that caused the event when Config.Opens is set
	// (FAN_REPORT_TID), else its process.
	Pid int
	// Mask is the raw fanotify mask (merged close events carry several
	// bits: a close event may have Kind CloseWrite and CloseNoWrite both
	// set in Mask).
	Mask uint64
	// Received is when the gate read the event.
	Received time.Time
	// State is the handler's own: what FastDecider.Fast found, for Decide.
	State any

	g *Gate
}

// Verdict is a permission answer.
type Verdict uint8

const (
	Allow Verdict = iota
	Deny
)

func (v Verdict) String() string {
	if v == Deny {
		return "deny"
	}
	return "allow"
}

// Handler decides permission events and sees close events.
type Handler interface {
	// Decide answers a permission event (Exec or Open). It runs on one of
	// the gate's workers, concurrently with other calls.
	Decide(ev *Event) Verdict
	// Closed sees close events in the order the kernel queued them, on the
	// gate's reading goroutine: it must be quick and must not open files
	// on a marked filesystem.
	Closed(ev *Event)
}

// FastDecider is a Handler that can answer some events at once, on the
// gate's reading thread, without a hand-off to a worker: a decision from a
// cache, or an event the policy ignores. Fast must be quick, must not block
// and must not open files on a marked filesystem. When it returns ok=false
// the event goes to a worker's Decide, with whatever Fast left in
// Event.State.
type FastDecider interface {
	Fast(ev *Event) (v Verdict, ok bool)
}

// Defaults.
const (
	DefaultWorkers = 4
	DefaultQueue   = 4096
	DefaultTimeout = 5 * time.Second
)

// Config configures a Gate.
type Config struct {
	// Mounts are paths on the filesystems to mark.
	Mounts []string
	// Opens also marks FAN_OPEN_PERM (FILE_CHECK); without it only execs
	// (and closes) are seen.
	Opens bool
	// Closes marks FAN_CLOSE_WRITE and FAN_CLOSE_NOWRITE; CloseWrites
	// FAN_CLOSE_WRITE alone (what Event.Unignore needs).
	Closes, CloseWrites bool
	Handler             Handler
	// Workers decide permission events (0: DefaultWorkers); Queue bounds
	// the events waiting for a worker (0: DefaultQueue).
	Workers, Queue int
	// Timeout bounds the time from reading an event to answering it (0:
	// DefaultTimeout). FailClosed answers FAN_DENY, instead of FAN_ALLOW,
	// when the queue is full or the timeout passes.
	Timeout    time.Duration
	FailClosed bool
	Logger     *slog.Logger
}

// Stats counts what the gate did.
type Stats struct {
	Events, Allowed, Denied, Self, QueueFull, TimedOut, Closes, Overflows uint64
	// Fast counts permission events answered by FastDecider.Fast.
	Fast uint64
	// ReaderBusy is the reading thread's time handling events (not
	// waiting for them), answers included: a written answer wakes the
	// opener, which may run on this CPU before the thread resumes.
	ReaderBusy time.Duration
	// FastTime is the time from reading to deciding the events Fast
	// answered: the gate's own cost of a cached decision.
	FastTime time.Duration
	// Ignored counts the ignore masks set on inodes (Event.Ignore): events
	// the kernel then stops reporting.
	Ignored uint64
}

func (c *Config) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) failVerdict() Verdict {
	if c.FailClosed {
		return Deny
	}
	return Allow
}
