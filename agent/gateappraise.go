//go:build linux

package agent

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/xattr"
)

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
	var deadline time.Time
	if h.a.cfg.HashTimeout > 0 {
		deadline = time.Now().Add(h.a.cfg.HashTimeout)
	}
	if err := hashReader(h.ctx, &preader{fd: ev.Fd}, ev2, needsD(tmpl), deadline); err != nil {
		return gate.Allow, h.a.hashErr(err, ev2)
	}
	h.count(&h.st.Hashed)
	var after unix.Stat_t
	stable := !writers && unix.Fstat(ev.Fd, &after) == nil && statInfo(&after).state == ver.fileState

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
		vi := h.addVersion(ver)
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
