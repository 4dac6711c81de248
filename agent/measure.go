package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/xattr"
)

// Result is the outcome of measuring one path.
type Result struct {
	// Path is the path asked for. Path and Name are byte strings (any name
	// a Linux filesystem allows), written to JSON as Bytes.
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
	// Code says what kind of error Error is (see Code).
	Code Code `json:"code,omitempty"`
}

// Result statuses.
const (
	StatusMeasured  = "measured"
	StatusQueued    = "queued"
	StatusUnchanged = "unchanged"
	StatusDuplicate = "duplicate"
	StatusError     = "error"
)

// Err returns the result's error, nil unless Status is "error"; errors.Is
// matches the sentinel of its Code.
func (r Result) Err() error {
	if r.Status != StatusError {
		return nil
	}
	return &RemoteError{Code: r.Code, Msg: r.Error}
}

// MarshalJSON writes the path and name as byte strings (see Bytes).
func (r Result) MarshalJSON() ([]byte, error) { return json.Marshal(toWire(r)) }

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(data []byte) error {
	var w wireResult
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*r = fromWire(w)
	return nil
}

// Measure measures each path in order and returns one Result per path.
// Once ctx is done the remaining paths are answered CodeStopping.
func (a *Agent) Measure(ctx context.Context, paths []string) []Result {
	out := make([]Result, 0, len(paths))
	for _, p := range paths {
		if ctx.Err() != nil {
			out = append(out, errResult(p, errorf(CodeStopping, "agent: %s: not measured: the request was canceled", p)))
			continue
		}
		out = append(out, a.measureOne(ctx, p))
	}
	return out
}

func errResult(path string, err error) Result {
	return Result{Path: path, Status: StatusError, Error: err.Error(), Code: codeOf(err)}
}

// measureOne measures one file. Only listing the entry holds the agent's
// lock: opening, hashing (bounded by Config.HashTimeout and canceled with
// ctx) and reading the xattrs happen outside it, so that a slow file never
// stalls status, other measurements or the gate.
func (a *Agent) measureOne(ctx context.Context, path string) Result {
	fail := func(err error) Result { return errResult(path, err) }
	if !filepath.IsAbs(path) {
		return fail(errorf(CodeBadRequest, "agent: %q is not an absolute path", path))
	}
	if err := a.accepting(); err != nil {
		return fail(err)
	}
	// Not blocking: a FIFO with no writer would wait in open itself, and
	// a file whose reads would wait (/proc/kmsg) reads EAGAIN instead.
	f, err := openNonblock(path)
	if err != nil {
		return fail(errorf(CodeUnreadable, "agent: %w", err))
	}
	fi, err := statFile(f)
	if err != nil {
		f.Close()
		return fail(errorf(CodeUnreadable, "agent: stat %s: %w", path, err))
	}
	if !fi.regular {
		f.Close()
		return fail(errorf(CodeNotRegular, "agent: %s is a %s, not a regular file: only regular files are measured, as the kernel's IMA measures them", path, fi.kind))
	}
	if a.seen.unchanged(fi.key, fi.state) {
		f.Close()
		return Result{Path: path, Status: StatusUnchanged}
	}
	name := path
	if real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil && filepath.IsAbs(real) {
		name = real
	}
	for attempt := 0; ; attempt++ {
		tmpl, hashAlg, pcrIdx := a.params()
		imaValue, evmValue := fxattr(f, xattr.IMA), fxattr(f, "security.evm")
		ev := &event{Name: name, File: true, UID: fi.uid, GID: fi.gid, Mode: fi.mode, Alg: hashAlg}
		ev.Sig, ev.EVMSig = sigFieldsOf(imaValue, evmValue)
		if !tmpl.IsLegacy() {
			ev.Alg = xattrHashAlg(imaValue, hashAlg)
		}
		t0 := time.Now()
		stable, err := a.hashFile(ctx, f, ev, needsD(tmpl), fi.state)
		if err != nil {
			f.Close()
			if !errors.Is(err, ErrHashTimeout) && !errors.Is(err, ErrStopping) {
				err = errorf(CodeUnreadable, "agent: hashing %s: %w", path, err)
			}
			return fail(err)
		}
		a.countHash(time.Since(t0))
		e, err := buildEntry(tmpl, ev, pcrIdx, a.order)
		if err != nil {
			f.Close()
			return fail(err)
		}
		status, err := a.addFile(e, tmpl, hashAlg, pcrIdx)
		if errors.Is(err, errParamsChanged) && attempt == 0 {
			continue // initialised meanwhile with other settings: again
		}
		f.Close()
		if err != nil {
			return fail(err)
		}
		if stable {
			a.seen.put(fi.key, fi.state)
		}
		return Result{Path: path, Status: status, Name: name, Digest: fmt.Sprintf("%s:%x", ev.Alg, ev.Digest),
			TemplateDigest: fmt.Sprintf("%x", e.Digest)}
	}
}

// errParamsChanged: the agent initialised between reading its settings and
// listing, with other settings; the entry is built again.
var errParamsChanged = errors.New("agent: the list's settings changed while hashing")

// accepting returns nil if the agent takes measurements now.
func (a *Agent) accepting() error {
	a.vmu.RLock()
	defer a.vmu.RUnlock()
	switch a.state {
	case Failed:
		return a.failErr
	case Starting:
		return errorf(CodeNotReady, "agent: not started")
	}
	return nil
}

// addFile lists (or queues) an entry built with the given settings.
func (a *Agent) addFile(e *ima.Entry, tmpl *ima.Template, hash ima.HashAlg, pcrIdx uint32) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tmpl != tmpl || a.hash != hash {
		return "", errParamsChanged
	}
	return a.addLocked(e)
}

// addLocked lists e (or queues it while deferred). Called with a.mu held.
func (a *Agent) addLocked(e *ima.Entry) (string, error) {
	switch a.state {
	case Failed:
		return "", a.failErr
	case Starting:
		return "", errorf(CodeNotReady, "agent: not started")
	}
	return a.add(e)
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
		if err := a.enqueue(e); err != nil {
			return "", err
		}
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

// enqueue keeps e durably in the queue while deferred. Called with a.mu
// held.
func (a *Agent) enqueue(e *ima.Entry) error {
	rec, err := appendBinary(nil, e, e.Digest, a.order)
	if err != nil {
		return err
	}
	if err := a.pending.Append(rec); err != nil {
		return errorf(CodeNotCommitted, "agent: queueing: %w", err)
	}
	a.update(func() { a.queued++ })
	return nil
}

func (a *Agent) countHash(d time.Duration) {
	a.tmu.Lock()
	a.tm.Hash += d
	a.tm.Hashed++
	a.tmu.Unlock()
}

func needsD(t *ima.Template) bool {
	for _, id := range t.Fields {
		if id == ima.FieldD {
			return true
		}
	}
	return false
}

// hashFile hashes f into ev (hashReader), stopping between reads when
// ctx is done (the client went away, the agent stops) or the hash time
// limit passes. stable reports that the file's size and times did not
// change while it was read (a measurement that may be cached). The caller
// keeps f.
func (a *Agent) hashFile(ctx context.Context, f *os.File, ev *event, wantD bool, before fileState) (stable bool, err error) {
	var deadline time.Time
	if a.cfg.HashTimeout > 0 {
		deadline = time.Now().Add(a.cfg.HashTimeout)
	}
	if err := hashReader(ctx, io.NewSectionReader(f, 0, math.MaxInt64), ev, wantD, deadline); err != nil {
		return false, a.hashErr(err, ev)
	}
	after, err := statFile(f)
	return err == nil && after.state == before, nil
}

func (a *Agent) hashErr(err error, ev *event) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errHashDeadline):
		return errorf(CodeHashTimeout, "agent: hashing %s: not done after %v (the hash time limit, --hash-timeout): not measured", ev.Name, a.cfg.HashTimeout)
	case errors.Is(err, context.Canceled):
		return errorf(CodeStopping, "agent: hashing %s: canceled (the client went away or the agent is stopping)", ev.Name)
	}
	return err
}

// xattr types (ima-spec.md §1.3).
const (
	xattrDigestNG    = 0x04
	xattrDigsig      = 0x03
	xattrPortableSig = 0x05
	xattrVeritySig   = 0x06
)

// fxattr returns the attribute of an open file, nil if it has none or it
// cannot be read. It reads through the descriptor: the file measured, not
// whatever its path names by now.
func fxattr(f *os.File, name string) []byte {
	v, err := xattr.FGet(f, name)
	if err != nil || len(v) == 0 {
		return nil
	}
	return v
}

// sigFieldsOf picks the sig and evmsig field values from a file's
// security.ima and security.evm (ima-spec.md §3.3): sig is security.ima when
// it holds a signature (0x03, 0x06), else an EVM portable signature (0x05);
// evmsig is the latter.
func sigFieldsOf(imaValue, evmValue []byte) (sig, evmsig []byte) {
	if len(evmValue) > 0 && evmValue[0] == xattrPortableSig {
		evmsig = evmValue
	}
	if len(imaValue) > 0 && (imaValue[0] == xattrDigsig || imaValue[0] == xattrVeritySig) {
		return imaValue, evmsig
	}
	return evmsig, evmsig
}

// xattrHashAlg picks a file's hash algorithm as the kernel does
// (ima-spec.md §3.5): a signature v2/v3 or a digest-ng security.ima names it
// (digsig.HashAlgOf), if imago can compute it; otherwise def, ima_hash_algo.
func xattrHashAlg(v []byte, def ima.HashAlg) ima.HashAlg {
	if alg := digsig.HashAlgOf(v, def); alg.New() != nil {
		return alg
	}
	return def
}
