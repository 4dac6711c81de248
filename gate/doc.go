// Package gate is imago's fanotify gate: it holds opens and execs on marked
// filesystems until a Handler has decided, so that a file is measured (and,
// where the policy says so, appraised) before it is used, the promise IMA
// keeps in the kernel (ima-spec.md §8.7: BPRM_CHECK, FILE_CHECK).
//
// A Gate marks each filesystem (FAN_MARK_FILESYSTEM, else FAN_MARK_MOUNT)
// for FAN_OPEN_EXEC_PERM (func=BPRM_CHECK), optionally FAN_OPEN_PERM
// (func=FILE_CHECK), and FAN_CLOSE_WRITE / FAN_CLOSE_NOWRITE (for the
// violation bookkeeping). Permission events are answered by a pool of
// workers behind a bounded queue; every permission event is answered on
// every path:
//
//   - events from the gate's own process are allowed at once, on the
//     reading goroutine (the agent's own opens must never wait on itself);
//   - an event that finds the queue full is answered at once by the failure
//     policy (Config.FailClosed: FAN_DENY, else FAN_ALLOW) and logged;
//   - an event not decided within Config.Timeout is answered by the failure
//     policy and logged; its handler still runs to the end (a late
//     measurement is still listed);
//   - when the gate stops, the kernel allows every event still pending (it
//     does so when a fanotify group is released).
//
// By comparison the kernel's own fanotify waits for an answer without a
// time limit (killably), and the kernel's IMA measures inside the open
// itself. A listener that dies releases everything it held.
//
// The gate uses FAN_UNLIMITED_QUEUE: with a bounded kernel queue an
// overflowing permission event is silently allowed by the kernel, which
// the gate could not see; the bound is on the gate's own queue instead.
// With Config.Opens, events carry the thread id (FAN_REPORT_TID) so that
// the opener's system call can be read from /proc/<tid>/syscall while it
// waits.
//
// A handler may answer cached decisions on the reading thread
// (FastDecider), and may ask the kernel to stop reporting the execs, opens
// and read closes of a file until it is modified (Event.Ignore: a fanotify
// ignore mark), which makes a cached exec cost what the kernel's own check
// costs.
//
// gate_other.go: New returns ErrNotSupported off Linux.
package gate
