package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
	"github.com/imago-ima/imago/pcr"
)

// maxTornTail bounds a torn final record: the largest record the agent
// writes (a 4 KiB path, two 64 KiB signatures, the fixed fields) is well
// below it. More bytes than this after the last good record cannot be one
// torn record.
const maxTornTail = 1 << 20

// scanned is a list or queue file read back.
type scanned struct {
	entries []*ima.Entry
	good    int64 // the end of the last good record
	size    int64
	torn    bool   // the bytes after good are a torn final record, to be cut
	why     string // what is wrong with them
}

// scan reads back a file of records the agent wrote (a list or the
// queue). A record that does not read, or whose SHA-1 template digest is
// not its template data's, ends the good part. What follows it is a torn
// final record, never acknowledged (an append is acknowledged after its
// fdatasync, and appends are serial), only if no good record can be found
// after it and it is no longer than one record, and either it is cut short
// (its lengths run past the end), or it is zeros (blocks never written),
// or damagedFinalOK (a list extended into a TPM: the TPM then shows
// whether that record was ever extended, and nothing is cut unless it
// agrees). Anything else is damage in the middle of the file: an error
// wrapping ErrCorrupt, and the file is left as it is.
func (a *Agent) scan(j *journal.File, damagedFinalOK bool) (scanned, error) {
	sc := scanned{size: j.Size()}
	r := ima.NewReader(j.ReaderAt(), ima.ReaderOptions{Order: a.order, DigestSize: 20, AllowUnknownTemplates: true})
	var bad error
	for {
		e, err := r.Next()
		if err == io.EOF && sc.good == sc.size {
			return sc, nil
		}
		if err == nil && !validRecord(e) {
			err = errors.New("SHA-1 template digest does not match the template data")
		}
		if err != nil || r.Offset() > sc.size {
			bad = err
			break
		}
		sc.good = r.Offset()
		sc.entries = append(sc.entries, e)
	}
	if bad == nil || bad == io.EOF {
		// A lone byte or two after the last record (ima.Reader takes a
		// trailing newline as a clean end): the start of a record.
		bad = io.ErrUnexpectedEOF
	}
	tail := sc.size - sc.good
	corrupt := func(why string) (scanned, error) {
		return sc, fmt.Errorf("%w: %s: the record at byte %d (entry %d) is damaged (%v) and %s; the file is left as it is. "+
			"Restore it from a copy, or move the state directory aside (keep it as evidence) to start a new list",
			ErrCorrupt, j.Path(), sc.good, len(sc.entries), bad, why)
	}
	if tail > maxTornTail {
		return corrupt(fmt.Sprintf("%d bytes follow it, more than one record", tail))
	}
	data := make([]byte, tail)
	if _, err := j.ReaderAt().ReadAt(data, sc.good); err != nil {
		return sc, fmt.Errorf("agent: %s: %w", j.Path(), err)
	}
	if off, ok := a.findRecord(data[1:]); ok {
		return corrupt(fmt.Sprintf("a good record follows at byte %d", sc.good+1+int64(off)))
	}
	switch {
	case isZero(data):
		sc.why = "zeros (never written)"
	case errors.Is(bad, io.ErrUnexpectedEOF):
		sc.why = "cut short"
	case damagedFinalOK:
		sc.why = fmt.Sprintf("damaged (%v)", bad)
	default:
		return corrupt("it is the last record, whole; it may have been acknowledged (if the agent crashed while writing it, " +
			fmt.Sprintf("cut the file at byte %d: truncate -s %d %s)", sc.good, sc.good, j.Path()))
	}
	sc.torn = true
	return sc, nil
}

// findRecord reports the first offset in data at which a good record
// starts (one that reads and whose SHA-1 template digest matches).
func (a *Agent) findRecord(data []byte) (int, bool) {
	const head = 4 + 20 + 4 // PCR, digest, name length
	for off := 0; off+head <= len(data); off++ {
		// Cheap filters first: a PCR index and a template name length
		// the agent writes.
		if p := a.order.Uint32(data[off:]); p > pcr.MaxIndex {
			continue
		}
		if n := a.order.Uint32(data[off+24:]); n == 0 || n > ima.MaxTemplateNameLen {
			continue
		}
		r := ima.NewReader(bytes.NewReader(data[off:]), ima.ReaderOptions{Order: a.order, DigestSize: 20, AllowUnknownTemplates: true})
		if e, err := r.Next(); err == nil && validRecord(e) {
			return off, true
		}
	}
	return 0, false
}

// cutTorn cuts a torn final record off.
func (a *Agent) cutTorn(j *journal.File, sc scanned) error {
	if !sc.torn {
		return nil
	}
	a.log.Warn("cutting a torn record at the end (never acknowledged)", "file", j.Path(),
		"entry", len(sc.entries), "offset", sc.good, "bytes", sc.size-sc.good, "record", sc.why)
	return j.Truncate(sc.good)
}

// validRecord checks a record read back from the list or queue: a PCR the
// agent extends (0-23), a template it writes (built-in, or a format of
// known fields), and its SHA-1 template digest its template data's, or all
// zeros for a violation entry (ima-spec.md §5.2; the gate lists them). The
// template digest covers the template data only: a violation record's data
// is not checked, which a replay against the TPM then catches.
func validRecord(e *ima.Entry) bool {
	if len(e.Digest) != 20 || e.PCR > 23 {
		return false
	}
	if _, err := ima.LookupTemplate(e.Template); err != nil {
		return false
	}
	if isZero(e.Digest) {
		return true
	}
	return bytes.Equal(e.TemplateDigest(pcr.SHA1), e.Digest)
}

// readQueue reads the queue of measurements kept while deferred, cuts a
// torn final record, counts them and fills the duplicate table. Called with
// a.mu held (or before the agent runs).
func (a *Agent) readQueue() ([]*ima.Entry, error) {
	sc, err := a.scan(a.pending, false)
	if err != nil {
		return nil, err
	}
	if err := a.cutTorn(a.pending, sc); err != nil {
		return nil, err
	}
	for _, e := range sc.entries {
		a.dup[a.dupKey(e)] = struct{}{}
	}
	a.update(func() { a.queued = len(sc.entries) })
	return sc.entries, nil
}

// drainPending lists the queued measurements from the skip-th on, in order,
// then empties the queue. Called with a.mu held.
func (a *Agent) drainPending(skip int) error {
	if a.pending.Size() == 0 {
		a.update(func() { a.queued = 0 })
		return nil
	}
	sc, err := a.scan(a.pending, false)
	if err != nil {
		return err
	}
	for i, e := range sc.entries {
		if i < skip {
			continue
		}
		if err := a.commit(e); err != nil {
			return fmt.Errorf("agent: listing queued measurement %d: %w", i, err)
		}
	}
	if n := len(sc.entries) - skip; n > 0 {
		a.log.Info("listed the measurements queued while deferred", "count", n)
	}
	a.update(func() { a.queued = 0 })
	return a.pending.Truncate(0)
}
