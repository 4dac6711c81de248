//go:build linux

package agent

import (
	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/fsfacts"
)

// ignoreSet is what an inode's ignore mark covers.
type ignoreSet uint8

const (
	ignoreExec  ignoreSet = 1 << iota // FAN_OPEN_EXEC_PERM
	ignoreOpens                       // FAN_OPEN_PERM and FAN_CLOSE_NOWRITE
)

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
