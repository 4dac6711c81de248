//go:build linux

package agent

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/internal/fsfacts"
)

// inodeInfo is the violation bookkeeping of one inode (ima-spec.md §5.1):
// the kernel's IMA_MUST_MEASURE and IMA_EMITTED_OPENWRITERS flags and the
// open counts the gate tracks from FAN_OPEN_PERM and FAN_CLOSE_*.
type inodeInfo struct {
	readers, writers int
	mustMeasure      bool
	emittedWriters   bool
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
	defer h.inodes.settle(p.ver.fileKey, in)
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
			h.inodes.settle(p.ver.fileKey, p.in)
			h.mu.Unlock()
			h.violation(ev, "ToMToU")
		} else {
			h.mu.Lock()
			p.in.readers = 0
			h.inodes.settle(p.ver.fileKey, p.in)
			h.mu.Unlock()
		}
	}
	if p.openWriters {
		h.violation(ev, "open_writers")
	}
}

// inode returns key's entry, creating it. Called with h.mu held.
func (h *gateHandler) inode(key fileKey) *inodeEntry { return h.inodes.entry(key) }

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
	in := h.inodes.get(key)
	if ev.Mask&unix.FAN_CLOSE_WRITE != 0 {
		h.closeWrites++
		if _, ok := h.ignored[key]; ok {
			delete(h.ignored, key)
			if err := ev.Unignore(); err != nil {
				h.log.Error("gate: exec cache", "err", err)
			}
		}
		if in != nil {
			in.versions = nil
			if in.writers > 0 {
				in.writers--
			}
			if in.writers == 0 {
				in.emittedWriters = false
			}
		}
	}
	if in == nil {
		return
	}
	if ev.Mask&unix.FAN_CLOSE_NOWRITE != 0 && in.readers > 0 {
		in.readers--
	}
	h.inodes.settle(key, in)
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

// addViolation lists a violation entry for the file open as fd
// (ima-spec.md §5.2): the current template, the digest fields zeroed, the
// other fields normal, a zero template digest (0xFF extended), PCR the
// agent's, no duplicate check.
func (a *Agent) addViolation(fd int, name string, st *unix.Stat_t) error {
	value := fgetxattr(fd, "security.ima")
	evm := fgetxattr(fd, "security.evm")
	a.mu.Lock()
	defer a.mu.Unlock()
	ev := &event{Name: name, File: true, UID: st.Uid, GID: st.Gid, Mode: uint16(st.Mode),
		Alg: a.hash, Digest: make([]byte, a.hash.Size()), D: make([]byte, 20)}
	ev.Sig, ev.EVMSig = sigFieldsOf(value, evm)
	e, err := buildEntry(a.tmpl, ev, a.pcr, a.order)
	if err != nil {
		return err
	}
	e.Digest = make([]byte, 20)
	switch a.state {
	case Deferred:
		return a.enqueue(e)
	case Initialised, Bypass:
		return a.commit(e)
	case Failed:
		return a.failErr
	}
	return fmt.Errorf("agent: cannot list a violation while %s", a.state)
}
