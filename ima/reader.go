package ima

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
)

// Limits applied by the binary and ASCII readers.
const (
	// MaxTemplateDataLen bounds data_len of one record: 64 MiB. The largest
	// legal fields are buffers (ima-buf key and critical-data payloads, which
	// the kernel does not cap), appended PKCS#7 signatures (modsig) and
	// evm-sig xattr values (each up to XATTR_SIZE_MAX = 64 KiB, several per
	// file); real records are a few KiB. 64 MiB leaves room for any of these
	// while keeping a hostile length from exhausting memory. Memory grows
	// only as bytes actually arrive (see framer.readLarge), so a cut record
	// with a huge length costs what was read, not what was claimed.
	MaxTemplateDataLen = 64 << 20
	// MaxPCRIndex is the highest PCR a policy rule can name (pcr= takes
	// 0..63 on 64-bit kernels, ima-spec.md §1.4).
	MaxPCRIndex = 63
	// MaxDigestSize is the widest template digest column: sha512 / sha3-512.
	MaxDigestSize = 64
)

// dataChunk is how much of a large template data field is allocated ahead of
// the bytes that fill it.
const dataChunk = 1 << 20

// ReaderOptions configure a binary Reader.
type ReaderOptions struct {
	// Order is the byte order of the producer: binary.LittleEndian,
	// binary.BigEndian or binary.NativeEndian. nil detects it from the first
	// record (Reader.ByteOrder reports the choice).
	Order binary.ByteOrder
	// DigestSize is the width of the template digest column: 20 for the
	// classic list and binary_runtime_measurements_sha1, the bank size for
	// binary_runtime_measurements_<algo>. 0 detects it from the first
	// record among 20, 32, 48 and 64.
	DigestSize int
	// AllowUnknownTemplates returns records whose template name is neither
	// a built-in nor a custom format as entries with no Fields (Data is
	// still complete, so the template digest can be recomputed). By
	// default such a record is a FormatError wrapping ErrUnknownTemplate.
	AllowUnknownTemplates bool
}

// Reader reads a binary measurement list (binary_runtime_measurements[_<algo>],
// ima-spec.md §2.3). The first error is sticky; a clean end is io.EOF and a
// record cut short is a *FormatError wrapping io.ErrUnexpectedEOF.
//
// Trailing newline: a list that ends in exactly one stray 0x0a byte after the
// last complete record (tpm2-tss sml-*.bin, decoded from base64 with a final
// line feed) ends cleanly with io.EOF and TrailingNewline reports it. Any
// other trailing bytes shorter than a record are io.ErrUnexpectedEOF.
type Reader struct {
	f     framer
	ready bool
	err   error
}

const readerBufSize = 64 << 10

// NewReader returns a Reader for the binary list in r. If r is a
// *bufio.Reader of at least 4 KiB it is used as is.
func NewReader(r io.Reader, opts ReaderOptions) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, readerBufSize)
	}
	rd := &Reader{f: framer{br: br, order: opts.Order, dsize: opts.DigestSize, lookup: true, allowUnknown: opts.AllowUnknownTemplates}}
	if opts.DigestSize != 0 && (opts.DigestSize < 1 || opts.DigestSize > MaxDigestSize) {
		rd.err = fmt.Errorf("ima: digest size %d out of range 1..%d", opts.DigestSize, MaxDigestSize)
	}
	return rd
}

// ByteOrder returns the byte order in use: the option, or the detected order
// once the first record has been read (nil before that, or if the list is
// empty and no order was given).
func (r *Reader) ByteOrder() binary.ByteOrder { return r.f.order }

// DigestSize returns the template digest width in use (0 until known).
func (r *Reader) DigestSize() int { return r.f.dsize }

// Offset returns the byte offset of the next record, i.e. the number of
// bytes consumed by the records returned so far.
func (r *Reader) Offset() int64 { return r.f.off }

// TrailingNewline reports whether the list ended in one tolerated stray 0x0a
// byte (see Reader).
func (r *Reader) TrailingNewline() bool { return r.f.trailing }

// Next returns the next entry. The entry owns its bytes: Digest, Data and
// every Field alias one allocation that the Reader never touches again.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.ready {
		if err := r.detect(); err != nil {
			r.err = err
			return nil, err
		}
	}
	e, err := r.readRecord()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.f.n++
	return e, nil
}

// All iterates over the remaining entries. It stops after the first error,
// which it yields with a nil entry; a clean end yields nothing more.
func (r *Reader) All() iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
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

// readRecord reads one record (ima-spec.md §2.3) through the shared framer
// and copies it into one allocation the entry owns.
func (r *Reader) readRecord() (*Entry, error) {
	a := new(entryAlloc)
	e := &a.e
	if err := r.f.next(e); err != nil {
		return nil, err
	}
	if !r.f.owned {
		D := len(e.Digest)
		buf := make([]byte, D+len(e.Data))
		copy(buf, e.Digest)
		copy(buf[D:], e.Data)
		e.Digest, e.Data = buf[:D:D], buf[D:]
	}
	t := r.f.l.t
	e.Template = t.Name
	e.Order = r.f.order
	e.tmpl = t
	if r.f.l.legacy {
		a.f[0] = Field{ID: FieldD, Data: e.Data[:20:20]}
		a.f[1] = Field{ID: FieldN, Data: e.Data[20:]}
		e.Fields = a.f[:2:2]
		return e, nil
	}
	if len(t.Fields) == 0 { // unknown template, allowed
		return e, nil
	}
	var fields []Field
	if len(t.Fields) <= len(a.f) {
		fields = a.f[:len(t.Fields):len(t.Fields)]
	} else {
		fields = make([]Field, len(t.Fields))
	}
	if err := splitFields(e.Data, t, r.f.order, fields); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, r.f.fail(r.f.start+int64(r.f.l.dataAt+fe.off), fe.id, fe.err)
		}
		return nil, r.f.fail(r.f.start, "template data", err)
	}
	e.Fields = fields
	return e, nil
}

// entryAlloc puts an Entry and up to three Fields in one allocation.
type entryAlloc struct {
	e Entry
	f [3]Field
}

func newEntry(nfields int) (*Entry, []Field) {
	a := new(entryAlloc)
	if nfields <= len(a.f) {
		return &a.e, a.f[:nfields:nfields]
	}
	return &a.e, make([]Field, nfields)
}

type fieldError struct {
	off int
	id  string
	err error
}

func (e *fieldError) Error() string { return e.id + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// splitFields splits template data into t's fields (each u32 length || data,
// ima-spec.md §3.3) and checks that they fill data exactly.
func splitFields(data []byte, t *Template, order binary.ByteOrder, out []Field) error {
	off := 0
	for i, id := range t.Fields {
		if len(data)-off < 4 {
			return &fieldError{off, id, malformed("field length cut at byte %d of %d bytes of template data", off, len(data))}
		}
		n := order.Uint32(data[off:])
		if uint64(n) > uint64(len(data)-off-4) {
			return &fieldError{off, id, malformed("field length %d exceeds the %d bytes left in template data", n, len(data)-off-4)}
		}
		off += 4
		out[i] = Field{ID: id, Data: data[off : off+int(n) : off+int(n)]}
		off += int(n)
	}
	if off != len(data) {
		return &fieldError{off, "template data", malformed("fields fill %d of %d bytes", off, len(data))}
	}
	return nil
}

func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return len(b) > 0
}

// detect fills in the byte order and digest size from the first record
// (framer.detect), unless both were given.
func (r *Reader) detect() error {
	if r.f.order != nil && r.f.dsize != 0 {
		r.ready = true
		return nil
	}
	p, err := r.f.br.Peek(r.f.br.Size())
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return fmt.Errorf("ima: reading first record: %w", err)
	}
	if err := r.f.detect(p); err != nil {
		return err
	}
	r.ready = true
	return nil
}
