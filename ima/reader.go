package ima

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
)

// Limits applied by the binary and ASCII readers.
const (
	// MaxTemplateDataLen bounds data_len of one record: 64 MiB. The largest
	// legal fields are buffers (ima-buf key and critical-data payloads, which
	// the kernel does not cap), appended PKCS#7 signatures (modsig) and
	// evm-sig xattr values (each up to XATTR_SIZE_MAX = 64 KiB, several per
	// file); real records are a few KiB. 64 MiB leaves room for any of these
	// while keeping a hostile length from exhausting memory. Memory grows
	// only as bytes actually arrive (see readData), so a cut record with a
	// huge length costs what was read, not what was claimed.
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
	br    *bufio.Reader
	opts  ReaderOptions
	order binary.ByteOrder
	dsize int
	ready bool

	off      int64
	n        int
	err      error
	trailing bool
	tc       templateCache
}

const readerBufSize = 64 << 10

// NewReader returns a Reader for the binary list in r. If r is a
// *bufio.Reader of at least 4 KiB it is used as is.
func NewReader(r io.Reader, opts ReaderOptions) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, readerBufSize)
	}
	rd := &Reader{br: br, opts: opts, order: opts.Order, dsize: opts.DigestSize}
	if opts.DigestSize != 0 && (opts.DigestSize < 1 || opts.DigestSize > MaxDigestSize) {
		rd.err = fmt.Errorf("ima: digest size %d out of range 1..%d", opts.DigestSize, MaxDigestSize)
	}
	return rd
}

// ByteOrder returns the byte order in use: the option, or the detected order
// once the first record has been read (nil before that, or if the list is
// empty and no order was given).
func (r *Reader) ByteOrder() binary.ByteOrder { return r.order }

// DigestSize returns the template digest width in use (0 until known).
func (r *Reader) DigestSize() int { return r.dsize }

// Offset returns the byte offset of the next record, i.e. the number of
// bytes consumed by the records returned so far.
func (r *Reader) Offset() int64 { return r.off }

// TrailingNewline reports whether the list ended in one tolerated stray 0x0a
// byte (see Reader).
func (r *Reader) TrailingNewline() bool { return r.trailing }

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
	r.n++
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

func (r *Reader) formatErr(off int64, field string, err error) error {
	return &FormatError{Offset: off, Entry: r.n, Field: field, Err: err}
}

// peek returns n bytes at the read position, or an error describing a short
// record at r.off.
func (r *Reader) peek(n int, what string) ([]byte, error) {
	p, err := r.br.Peek(n)
	if err == nil {
		return p, nil
	}
	if err == io.EOF {
		return nil, r.formatErr(r.off, what, io.ErrUnexpectedEOF)
	}
	return nil, fmt.Errorf("ima: entry %d at byte 0x%x: %w", r.n, r.off, err)
}

// readRecord reads one record (ima-spec.md §2.3).
func (r *Reader) readRecord() (*Entry, error) {
	order, D := r.order, r.dsize
	hdr := 8 + D
	p, err := r.br.Peek(hdr)
	if err != nil {
		if err != io.EOF {
			return nil, fmt.Errorf("ima: entry %d at byte 0x%x: %w", r.n, r.off, err)
		}
		switch {
		case len(p) == 0:
			return nil, io.EOF
		case len(p) == 1 && p[0] == '\n':
			r.trailing = true
			r.br.Discard(1)
			r.off++
			return nil, io.EOF
		}
		return nil, r.formatErr(r.off, "record header", io.ErrUnexpectedEOF)
	}
	pcrIdx := order.Uint32(p)
	if pcrIdx > MaxPCRIndex {
		return nil, r.formatErr(r.off, "pcr", malformed("pcr index %d exceeds %d", pcrIdx, MaxPCRIndex))
	}
	nameLen := int(order.Uint32(p[4+D:]))
	if nameLen == 0 || nameLen > MaxTemplateNameLen {
		return nil, r.formatErr(r.off+int64(4+D), "template name length", fmt.Errorf("%w: %d not in 1..%d", ErrTooLarge, nameLen, MaxTemplateNameLen))
	}
	if p, err = r.peek(hdr+nameLen+4, "template name"); err != nil {
		return nil, err
	}
	name := p[hdr : hdr+nameLen]
	t, err := r.tc.lookup(name)
	if err != nil {
		if !r.opts.AllowUnknownTemplates || !printable(name) {
			return nil, r.formatErr(r.off+int64(hdr), "template name", err)
		}
		t = &Template{Name: string(name), Custom: true}
	}

	if t.IsLegacy() {
		return r.readLegacy(t, hdr+nameLen)
	}

	dataLen := int64(order.Uint32(p[hdr+nameLen:]))
	if dataLen > MaxTemplateDataLen {
		return nil, r.formatErr(r.off+int64(hdr+nameLen), "template data length", fmt.Errorf("%w: %d exceeds %d", ErrTooLarge, dataLen, MaxTemplateDataLen))
	}
	var buf []byte
	if dataLen <= dataChunk {
		buf = make([]byte, D, D+int(dataLen))
	} else {
		buf = make([]byte, D, D+dataChunk)
	}
	copy(buf, p[4:4+D])
	start := r.off
	head := hdr + nameLen + 4
	r.br.Discard(head)
	buf, err = r.readData(buf, int(dataLen), start+int64(head))
	if err != nil {
		return nil, err
	}
	r.off += int64(head) + dataLen
	e, fields := newEntry(len(t.Fields))
	e.PCR = pcrIdx
	e.Digest = buf[:D:D]
	e.Template = t.Name
	e.Data = buf[D:]
	e.Order = order
	e.tmpl = t
	if len(t.Fields) == 0 { // unknown template, allowed
		return e, nil
	}
	if err := splitFields(e.Data, t, order, fields); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, r.formatErr(start+int64(head)+int64(fe.off), fe.id, fe.err)
		}
		return nil, r.formatErr(start, "template data", err)
	}
	e.Fields = fields
	return e, nil
}

// readData reads n bytes of template data, appending to buf. Buffers larger
// than dataChunk grow as the data arrives.
func (r *Reader) readData(buf []byte, n int, at int64) ([]byte, error) {
	D := len(buf)
	if cap(buf) >= D+n {
		buf = buf[:D+n]
		if _, err := io.ReadFull(r.br, buf[D:]); err != nil {
			return nil, r.dataErr(err, at)
		}
		return buf, nil
	}
	for len(buf) < D+n {
		k := min(dataChunk, D+n-len(buf))
		buf = slices.Grow(buf, k)[:len(buf)+k]
		if _, err := io.ReadFull(r.br, buf[len(buf)-k:]); err != nil {
			return nil, r.dataErr(err, at)
		}
	}
	return buf, nil
}

func (r *Reader) dataErr(err error, at int64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return r.formatErr(at, "template data", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("ima: entry %d at byte 0x%x: %w", r.n, at, err)
}

// readLegacy reads the rest of an "ima" record: d (20 bytes, no length), u32
// n_len, name without NUL (ima-spec.md §2.3).
func (r *Reader) readLegacy(t *Template, at int) (*Entry, error) {
	order, D := r.order, r.dsize
	p, err := r.peek(at+24, "d")
	if err != nil {
		return nil, err
	}
	nlen := int(order.Uint32(p[at+20:]))
	if nlen > MaxEventNameLen {
		return nil, r.formatErr(r.off+int64(at+20), "n length", fmt.Errorf("%w: %d exceeds %d", ErrTooLarge, nlen, MaxEventNameLen))
	}
	if p, err = r.peek(at+24+nlen, "n"); err != nil {
		return nil, err
	}
	buf := make([]byte, D+20+nlen)
	copy(buf, p[4:4+D])
	copy(buf[D:], p[at:at+20])
	copy(buf[D+20:], p[at+24:])
	r.br.Discard(at + 24 + nlen)
	r.off += int64(at + 24 + nlen)
	e, fields := newEntry(2)
	e.PCR = order.Uint32(p)
	e.Digest = buf[:D:D]
	e.Template = t.Name
	e.Data = buf[D:]
	e.Order = order
	e.tmpl = t
	fields[0] = Field{ID: FieldD, Data: e.Data[:20:20]}
	fields[1] = Field{ID: FieldN, Data: e.Data[20:]}
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

// detect chooses the byte order and digest size from the first record
// (ima-spec.md §2.2, go-style "Decoding"): every candidate is tried on the
// bytes available, and the first sane one (PCR index <= 63, a known template
// name of 1..255 printable bytes, data_len within limits and exactly filled
// by the template's fields) wins, preferring one whose next record header is
// also sane. Little-endian and 20-byte digests are tried first.
func (r *Reader) detect() error {
	if r.order != nil && r.dsize != 0 {
		r.ready = true
		return nil
	}
	p, err := r.br.Peek(r.br.Size())
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return fmt.Errorf("ima: reading first record: %w", err)
	}
	if len(p) == 0 || (len(p) == 1 && p[0] == '\n') {
		// Empty list: nothing to detect; readRecord reports EOF.
		if r.order == nil {
			r.order = binary.LittleEndian
		}
		if r.dsize == 0 {
			r.dsize = 20
		}
		r.ready = true
		return nil
	}
	orders := []binary.ByteOrder{binary.LittleEndian, binary.BigEndian}
	if r.order != nil {
		orders = []binary.ByteOrder{r.order}
	}
	sizes := []int{20, 32, 48, 64}
	if r.dsize != 0 {
		sizes = []int{r.dsize}
	}
	var first binary.ByteOrder
	firstSize := 0
	for _, o := range orders {
		for _, d := range sizes {
			n, ok := r.checkRecord(p, o, d)
			if !ok {
				continue
			}
			var rest []byte
			if n > 0 {
				rest = p[n:]
			}
			if n < 0 || len(rest) == 0 || (len(rest) == 1 && rest[0] == '\n') || len(rest) < 8+d {
				// Nothing (or not enough) after the first record to compare.
				r.order, r.dsize, r.ready = o, d, true
				return nil
			}
			if _, ok2 := r.checkHeader(rest, o, d); ok2 {
				r.order, r.dsize, r.ready = o, d, true
				return nil
			}
			if first == nil {
				first, firstSize = o, d
			}
		}
	}
	if first != nil {
		r.order, r.dsize, r.ready = first, firstSize, true
		return nil
	}
	return r.formatErr(0, "first record", malformed("cannot detect byte order and digest size: no candidate (little/big endian, digest 20/32/48/64) gives a sane record"))
}

// checkHeader checks the pcr, name length and name of a record at p[0:].
// It returns the template (nil if unknown but allowed) and whether the
// header is sane.
func (r *Reader) checkHeader(p []byte, o binary.ByteOrder, d int) (*Template, bool) {
	if len(p) < 8+d || o.Uint32(p) > MaxPCRIndex {
		return nil, false
	}
	nl := int(o.Uint32(p[4+d:]))
	if nl == 0 || nl > MaxTemplateNameLen || len(p) < 8+d+nl {
		return nil, false
	}
	name := p[8+d : 8+d+nl]
	if !printable(name) {
		return nil, false
	}
	t, err := r.tc.lookup(name)
	if err != nil {
		if !r.opts.AllowUnknownTemplates {
			return nil, false
		}
		return &Template{Name: string(name), Custom: true}, true
	}
	return t, true
}

// checkRecord checks a whole first record in p. It returns the record's
// length, or -1 if the record is longer than p (then only its start was
// checked).
func (r *Reader) checkRecord(p []byte, o binary.ByteOrder, d int) (int, bool) {
	t, ok := r.checkHeader(p, o, d)
	if !ok {
		return 0, false
	}
	at := 8 + d + int(o.Uint32(p[4+d:]))
	if t.IsLegacy() {
		if len(p) < at+24 {
			return 0, false
		}
		nl := int(o.Uint32(p[at+20:]))
		if nl > MaxEventNameLen || len(p) < at+24+nl {
			return 0, false
		}
		return at + 24 + nl, true
	}
	if len(p) < at+4 {
		return 0, false
	}
	dl := int(o.Uint32(p[at:]))
	if dl > MaxTemplateDataLen {
		return 0, false
	}
	data := p[at+4:]
	if len(data) < dl {
		// Longer than what we can see: check what we can.
		if len(t.Fields) > 0 && len(data) >= 4 && int(o.Uint32(data)) > dl-4 {
			return 0, false
		}
		return -1, true
	}
	data = data[:dl]
	if len(t.Fields) > 0 {
		fields := make([]Field, len(t.Fields))
		if splitFields(data, t, o, fields) != nil {
			return 0, false
		}
	}
	return at + 4 + dl, true
}
