package eventlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"iter"

	"github.com/imago-ima/imago/pcr"
)

// Limits on what the Reader accepts from a log. Real firmware logs are tens
// of KiB; a padded TDX CCEL area is 256 KiB to a few MiB.
const (
	// MaxLogSize bounds the bytes read from one log, trailing filler included.
	MaxLogSize = 16 << 20
	// MaxEvents bounds the number of records in one log.
	MaxEvents = 1 << 16
	// MaxEventSize bounds one record's eventSize (the event data). The
	// largest real events (EV_EFI_VARIABLE_DRIVER_CONFIG of dbx) are tens of
	// KiB.
	MaxEventSize = 1 << 20
	// MaxDigests bounds a record's digestCount and the Spec ID event's
	// numberOfAlgorithms.
	MaxDigests = 16
	// MaxDigestSize bounds the digest size of an algorithm in the Spec ID
	// table (the largest known digest, SHA-512, is 64 bytes).
	MaxDigestSize = 128
)

// FormatError reports a malformed log: the record's sequence number and byte
// offset, the field being read and the cause. A record cut short wraps
// io.ErrUnexpectedEOF.
type FormatError struct {
	Offset int64  // byte offset of the record in the log
	Event  int    // the record's sequence number, 0 for the first
	Field  string // the TCG field being read: "pcrIndex", "eventSize", ...
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("eventlog: event %d at byte 0x%x: %s: %v", e.Event, e.Offset, e.Field, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Reader reads the records of a TCG PC Client event log one at a time
// (ima-spec.md §11). It detects the format from the first record: an
// EV_NO_ACTION record whose data opens with "Spec ID Event03\0" switches the
// rest of the log to TCG_PCR_EVENT2 records (crypto-agile); anything else
// leaves it in the SHA-1 format. It stops at the end of input or when the rest
// of the input is filler (all 0x00 or all 0xFF, as padded logs have),
// returning io.EOF. After the first error every call returns that error.
type Reader struct {
	src        io.Reader
	off        int64 // bytes consumed from the log so far
	seq        int
	format     Format
	spec       *SpecID
	filler     int64
	fillerByte byte
	err        error
	hdr        [32]byte
}

// NewReader returns a Reader over r. Nothing is read until Next.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: r}
}

// Offset returns the byte offset just after the last record returned (or, at
// io.EOF, the end of the log including filler).
func (r *Reader) Offset() int64 { return r.off }

// Format returns the log's format, known once the first record was read.
func (r *Reader) Format() Format { return r.format }

// SpecID returns the parsed Spec ID event of a crypto-agile log, or nil.
func (r *Reader) SpecID() *SpecID { return r.spec }

// Filler returns the number of filler bytes found after the last record and
// the filler byte (0x00 or 0xFF). It is 0 until Next has returned io.EOF.
func (r *Reader) Filler() (n int64, b byte) { return r.filler, r.fillerByte }

// All returns an iterator over the remaining records. It stops after the
// last record, or yields one final error (never io.EOF).
func (r *Reader) All() iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		for {
			e, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// Next returns the next record, or io.EOF after the last one.
func (r *Reader) Next() (*Event, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.seq++
	return e, nil
}

func (r *Reader) fail(start int64, field string, err error) error {
	return &FormatError{Offset: start, Event: r.seq, Field: field, Err: err}
}

// read fills p from the log, tracking the offset and the size limit. As
// io.ReadFull, it returns io.EOF if nothing was read and io.ErrUnexpectedEOF
// for a short read.
func (r *Reader) read(p []byte) (int, error) {
	if r.off+int64(len(p)) > MaxLogSize {
		return 0, fmt.Errorf("log exceeds limit of %d bytes", MaxLogSize)
	}
	n, err := io.ReadFull(r.src, p)
	r.off += int64(n)
	return n, err
}

func (r *Reader) next() (*Event, error) {
	start := r.off
	if r.seq >= MaxEvents {
		return nil, r.fail(start, "pcrIndex", fmt.Errorf("log has more than %d events", MaxEvents))
	}
	// pcrIndex and eventType open both record layouts.
	h := r.hdr[:8]
	n, err := r.read(h)
	switch {
	case n == 0 && err == io.EOF:
		return nil, io.EOF
	case err == io.ErrUnexpectedEOF && r.seq > 0 && isFiller(h[:n]):
		r.filler, r.fillerByte = int64(n), h[0]
		return nil, io.EOF
	case err != nil:
		return nil, r.fail(start, "pcrIndex", err)
	}
	if r.seq > 0 && isFiller(h) {
		done, err := r.checkFiller(start, h)
		if err != nil {
			return nil, err
		}
		if done {
			return nil, io.EOF
		}
	}
	le := binary.LittleEndian
	e := &Event{Seq: r.seq, Offset: start, PCR: le.Uint32(h), Type: EventType(le.Uint32(h[4:]))}

	if r.format != FormatCryptoAgile {
		// TCG_PCR_EVENT: digest[20] SHA-1, eventSize.
		b := r.hdr[8:32]
		if _, err := r.read(b); err != nil {
			return nil, r.fail(start, "digest", unexpected(err))
		}
		e.Digests = []Digest{{Bank: pcr.SHA1, Sum: bytes.Clone(b[:20])}}
	} else {
		b := r.hdr[8:12]
		if _, err := r.read(b); err != nil {
			return nil, r.fail(start, "digestCount", unexpected(err))
		}
		count := le.Uint32(b)
		if count > MaxDigests {
			return nil, r.fail(start, "digestCount", fmt.Errorf("digestCount %d exceeds limit %d", count, MaxDigests))
		}
		e.Digests = make([]Digest, 0, count)
		for range count {
			a := r.hdr[12:14]
			if _, err := r.read(a); err != nil {
				return nil, r.fail(start, "hashAlg", unexpected(err))
			}
			bank := pcr.Bank(le.Uint16(a))
			size, ok := r.spec.Size(bank)
			if !ok {
				return nil, r.fail(start, "hashAlg", fmt.Errorf("algorithm %s is not in the Spec ID event", bank))
			}
			if _, dup := e.Digest(bank); dup {
				return nil, r.fail(start, "hashAlg", fmt.Errorf("algorithm %s appears twice", bank))
			}
			d := make([]byte, size)
			if _, err := r.read(d); err != nil {
				return nil, r.fail(start, "digest", unexpected(err))
			}
			e.Digests = append(e.Digests, Digest{Bank: bank, Sum: d})
		}
	}
	sz := r.hdr[28:32]
	if r.format == FormatCryptoAgile {
		if _, err := r.read(sz); err != nil {
			return nil, r.fail(start, "eventSize", unexpected(err))
		}
	}
	size := le.Uint32(sz)
	if size > MaxEventSize {
		return nil, r.fail(start, "eventSize", fmt.Errorf("event size %d exceeds limit %d", size, MaxEventSize))
	}
	data, err := r.readData(int(size))
	if err != nil {
		return nil, r.fail(start, "event", unexpected(err))
	}
	e.Data = data

	if r.seq == 0 {
		r.format = FormatSHA1
		if isSpecIDEvent(e) {
			spec, missing, err := parseSpecID(e.Data)
			if err != nil {
				return nil, r.fail(start, "specID", err)
			}
			if missing > 0 {
				// vendorInfoSize runs past eventSize: take the rest of
				// vendorInfo from the bytes that follow the record.
				more := make([]byte, missing)
				if _, err := r.read(more); err != nil {
					return nil, r.fail(start, "vendorInfo", unexpected(err))
				}
				spec.VendorInfo = append(spec.VendorInfo, more...)
				spec.VendorInfoOutside = missing
			}
			r.spec = spec
			r.format = FormatCryptoAgile
		}
	}
	return e, nil
}

// readData reads n bytes in chunks, so that a record whose eventSize lies
// about a short input does not allocate eventSize bytes up front.
func (r *Reader) readData(n int) ([]byte, error) {
	const chunk = 64 << 10
	if n <= chunk {
		out := make([]byte, n)
		if _, err := r.read(out); err != nil {
			return nil, err
		}
		return out, nil
	}
	out := make([]byte, 0, chunk)
	for len(out) < n {
		k := min(n-len(out), chunk)
		out = append(out, make([]byte, k)...)
		if _, err := r.read(out[len(out)-k:]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkFiller is called when a record header h (8 bytes at start) is all 0x00
// or all 0xFF. It reads the rest of the input: if every byte equals h[0] the
// log ends there (done). Otherwise the bytes read are put back in front of
// the source and the record is parsed normally.
func (r *Reader) checkFiller(start int64, h []byte) (done bool, err error) {
	var rest bytes.Buffer
	limit := MaxLogSize - r.off
	n, err := io.Copy(&rest, io.LimitReader(r.src, limit+1))
	if err != nil {
		return false, r.fail(start, "pcrIndex", err)
	}
	if n > limit {
		return false, r.fail(start, "pcrIndex", fmt.Errorf("log exceeds limit of %d bytes", MaxLogSize))
	}
	if isFillerOf(rest.Bytes(), h[0]) {
		r.off += n
		r.filler, r.fillerByte = int64(len(h))+n, h[0]
		return true, nil
	}
	r.src = io.MultiReader(bytes.NewReader(rest.Bytes()), r.src)
	return false, nil
}

// isSpecIDEvent reports whether e, a log's first record, is the crypto-agile
// Spec ID event: EV_NO_ACTION with data opening "Spec ID Event03\0". The
// pcrIndex is not checked: it is 0 in TPM logs but 1 (the MR index) in TDX
// CCEL logs.
func isSpecIDEvent(e *Event) bool {
	return e.Type == EV_NO_ACTION && IsSpecID(e.Data)
}

func isFiller(b []byte) bool {
	return len(b) > 0 && (b[0] == 0 || b[0] == 0xff) && isFillerOf(b, b[0])
}

func isFillerOf(b []byte, c byte) bool {
	for _, x := range b {
		if x != c {
			return false
		}
	}
	return true
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Log is a whole event log read into memory.
type Log struct {
	Format Format
	// SpecID is the parsed Spec ID event of a crypto-agile log, else nil.
	SpecID *SpecID
	// Events holds every record, the Spec ID record included.
	Events []*Event
	// Size is the log's length in bytes, filler included.
	Size int64
	// Filler is the number of 0x00 or 0xFF filler bytes after the last
	// record; FillerByte says which.
	Filler     int64
	FillerByte byte
}

// ReadLog reads a whole log from r (at most MaxLogSize bytes).
func ReadLog(r io.Reader) (*Log, error) {
	rd := NewReader(r)
	var evs []*Event
	for e, err := range rd.All() {
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	l := &Log{Format: rd.Format(), SpecID: rd.SpecID(), Events: evs, Size: rd.Offset()}
	l.Filler, l.FillerByte = rd.Filler()
	return l, nil
}

// Replay replays the log's events (see Replay) and adds the filler count to
// the info.
func (l *Log) Replay() (pcr.Set, ReplayInfo, error) {
	s, info, err := Replay(l.Events)
	if err != nil {
		return nil, ReplayInfo{}, err
	}
	info.Filler, info.FillerByte = l.Filler, l.FillerByte
	return s, info, nil
}
