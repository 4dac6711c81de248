package agent

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/xattr"
)

// Result is the outcome of measuring one path.
type Result struct {
	Path string `json:"path"`
	// Status is "measured" (listed and extended), "queued" (kept durably
	// until initialisation), "unchanged" (measured before and not changed
	// since), "duplicate" (an identical record is already listed, §4.5) or
	// "error".
	Status string `json:"status"`
	// Name is the name listed (the file's absolute path with symlinks
	// resolved, as d_absolute_path gives).
	Name string `json:"name,omitempty"`
	// Digest is the file digest as listed, "<alg>:<hex>".
	Digest string `json:"digest,omitempty"`
	// TemplateDigest is the SHA-1 template digest.
	TemplateDigest string `json:"template_digest,omitempty"`
	Error          string `json:"error,omitempty"`
}

// Result statuses.
const (
	StatusMeasured  = "measured"
	StatusQueued    = "queued"
	StatusUnchanged = "unchanged"
	StatusDuplicate = "duplicate"
	StatusError     = "error"
)

// fileKey names an inode; fileState is its change state. The kernel keys
// measure-once on the inode and detects change through i_version or ctime
// (ima-spec.md §4.5); i_version is not exposed to user space (statx's
// STATX_CHANGE_COOKIE is kernel-internal), so size, mtime and ctime in
// nanoseconds stand in for it.
type fileKey struct{ dev, ino uint64 }

type fileState struct {
	size         int64
	mtime, ctime syscall.Timespec
}

func statKey(st *syscall.Stat_t) (fileKey, fileState) {
	return fileKey{uint64(st.Dev), uint64(st.Ino)}, fileState{size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// Measure measures each path in order and returns one Result per path.
func (a *Agent) Measure(paths []string) []Result {
	out := make([]Result, 0, len(paths))
	for _, p := range paths {
		out = append(out, a.measureOne(p))
	}
	return out
}

func (a *Agent) measureOne(path string) Result {
	res := Result{Path: path}
	fail := func(err error) Result {
		res.Status, res.Error = StatusError, err.Error()
		return res
	}
	if !filepath.IsAbs(path) {
		return fail(fmt.Errorf("agent: %q is not an absolute path", path))
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fail(fmt.Errorf("agent: stat %s: %w", path, err))
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fail(fmt.Errorf("agent: %s is not a regular file", path))
	}
	key, before := statKey(&st)

	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.state {
	case Failed:
		return fail(a.failErr)
	case Starting:
		return fail(errors.New("agent: not started"))
	}
	if prev, ok := a.seen[key]; ok && prev == before {
		res.Status = StatusUnchanged
		return res
	}
	name := path
	if real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil && filepath.IsAbs(real) {
		name = real
	}
	ev := &event{Name: name, File: true, UID: st.Uid, GID: st.Gid, Mode: uint16(st.Mode)}
	ev.Sig, ev.EVMSig = sigFields(name)
	ev.Alg = a.hash
	if !a.tmpl.IsLegacy() {
		ev.Alg = fileHashAlg(name, a.hash)
	}
	t0 := time.Now()
	if a.hbuf == nil {
		a.hbuf = make([]byte, 256<<10)
	}
	if err := hashFile(f, ev, needsD(a.tmpl), a.hbuf); err != nil {
		return fail(fmt.Errorf("agent: hashing %s: %w", path, err))
	}
	a.tm.Hash += time.Since(t0)
	a.tm.Hashed++
	var after syscall.Stat_t
	stable := syscall.Fstat(int(f.Fd()), &after) == nil
	if stable {
		_, now := statKey(&after)
		stable = now == before
	}
	e, err := buildEntry(a.tmpl, ev, a.pcr, a.order)
	if err != nil {
		return fail(err)
	}
	res.Name = name
	res.Digest = fmt.Sprintf("%s:%x", ev.Alg, ev.Digest)
	res.TemplateDigest = fmt.Sprintf("%x", e.Digest)
	status, err := a.add(e)
	if err != nil {
		return fail(err)
	}
	res.Status = status
	if stable {
		a.seen[key] = before
	}
	return res
}

// add lists (or queues, while deferred) e unless an identical record is
// already there. Called with a.mu held.
func (a *Agent) add(e *ima.Entry) (string, error) {
	key := a.dupKey(e)
	if _, dup := a.dup[key]; dup {
		return StatusDuplicate, nil
	}
	switch a.state {
	case Deferred:
		rec, err := appendBinary(nil, e, e.Digest, a.order)
		if err != nil {
			return "", err
		}
		if err := a.pending.Append(rec); err != nil {
			return "", err
		}
		a.queued++
		a.dup[key] = struct{}{}
		return StatusQueued, nil
	case Initialised, Bypass:
		if err := a.commit(e); err != nil {
			return "", err
		}
		a.dup[key] = struct{}{}
		return StatusMeasured, nil
	}
	return "", fmt.Errorf("agent: cannot measure while %s", a.state)
}

func needsD(t *ima.Template) bool {
	for _, id := range t.Fields {
		if id == ima.FieldD {
			return true
		}
	}
	return false
}

// hashFile fills ev.Digest with the file's ev.Alg digest and, for a
// template with a legacy d field, ev.D with its SHA-1 (ima-spec.md §3.3: the
// file digest itself when it is SHA-1, else a SHA-1 re-hash).
func hashFile(f *os.File, ev *event, wantD bool, buf []byte) error {
	return hashReader(onlyReader{f}, ev, wantD, buf)
}

// hashReader hashes r with ev.Alg into ev.Digest and, when wantD (a legacy
// d field), with SHA-1 into ev.D in the same pass.
func hashReader(r io.Reader, ev *event, wantD bool, buf []byte) error {
	h := ev.Alg.New()
	var w io.Writer = h
	var h1 hash.Hash
	if wantD && ev.Alg != ima.HashSHA1 {
		h1 = sha1.New()
		w = io.MultiWriter(h, h1)
	}
	if _, err := io.CopyBuffer(w, r, buf); err != nil {
		return err
	}
	ev.Digest = h.Sum(nil)
	switch {
	case h1 != nil:
		ev.D = h1.Sum(nil)
	case wantD:
		ev.D = ev.Digest
	}
	return nil
}

// onlyReader hides *os.File's WriterTo/ReadFrom so CopyBuffer uses buf.
type onlyReader struct{ io.Reader }

// xattr types (ima-spec.md §1.3).
const (
	xattrDigestNG    = 0x04
	xattrDigsig      = 0x03
	xattrPortableSig = 0x05
	xattrVeritySig   = 0x06
)

// getxattr returns the attribute of path, nil if it has none or cannot be
// read.
func getxattr(path, name string) []byte {
	v, err := xattr.Get(path, name)
	if err != nil || len(v) == 0 {
		return nil
	}
	return v
}

// sigFields returns the sig and evmsig fields for a file (ima-spec.md §3.3):
// sig is security.ima when it holds a signature (0x03, 0x06), else
// security.evm when it is a portable signature (0x05); evmsig is the latter.
func sigFields(path string) (sig, evmsig []byte) {
	return sigFieldsOf(getxattr(path, "security.ima"), getxattr(path, "security.evm"))
}

// sigFieldsOf picks the sig and evmsig field values from a file's
// security.ima and security.evm (ima-spec.md §3.3): sig is security.ima when
// it holds a signature, else an EVM portable signature; evmsig is the latter.
func sigFieldsOf(imaValue, evmValue []byte) (sig, evmsig []byte) {
	if len(evmValue) > 0 && evmValue[0] == xattrPortableSig {
		evmsig = evmValue
	}
	if len(imaValue) > 0 && (imaValue[0] == xattrDigsig || imaValue[0] == xattrVeritySig) {
		return imaValue, evmsig
	}
	return evmsig, evmsig
}

// fileHashAlg picks the file's hash algorithm as the kernel does
// (ima-spec.md §3.5): a signature v2/v3 or a digest-ng security.ima names it
// (if it can be computed), otherwise ima_hash_algo.
func fileHashAlg(path string, def ima.HashAlg) ima.HashAlg {
	return xattrHashAlg(getxattr(path, "security.ima"), def)
}
