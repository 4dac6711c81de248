package ima

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// This file holds the framing of binary records (ima-spec.md §2.3) that
// Reader and Scanner share: the record header, the PCR bound, the template
// name length and lookup, the legacy "ima" record, the data length bound,
// chunked reads of records larger than the read buffer, the trailing-newline
// rule and the FormatError offsets; and the detection of byte order and
// digest size from the first record (§2.2). Nothing here splits fields.

// framer reads one record at a time. The bytes of a record stay in the
// bufio.Reader's buffer when they fit, else in a buffer of their own.
type framer struct {
	br    *bufio.Reader
	order binary.ByteOrder
	dsize int
	// lookup looks template names up (Reader), rejecting unknown ones
	// unless allowUnknown; without it any name is framed and only "ima" is
	// told apart (Scanner).
	lookup       bool
	allowUnknown bool
	// reuse keeps the buffer of a record too large for br for the next one
	// (Scanner); without it each such record is a fresh allocation that the
	// caller owns (Reader).
	reuse bool

	off      int64 // offset of the next record
	n        int   // index of the next record, for errors
	trailing bool  // ended in one tolerated stray 0x0a
	big      []byte
	nameBuf  []byte

	// The record last framed by next, valid until the next call: its head,
	// template name and offset, and whether the Digest and Data that next
	// set are digest || data of a fresh allocation nothing else references.
	l     layout
	name  []byte
	start int64
	owned bool

	tc templateCache
}

// layout is what head learns of the record at the start of a byte slice;
// offsets are relative to the record's start.
type layout struct {
	pcr     uint32
	nameLen int
	t       *Template // when framer.lookup
	named   bool      // the template name was read and accepted
	legacy  bool
	dataAt  int // template data (not "ima")
	total   int // record length, 0 until known
	// When the bytes ran out before total was known: need bytes are needed
	// to go on; an input cut there is reported as cutField at cutAt.
	need     int
	cutField string
	cutAt    int
}

// frameErr is a malformed record: err about field at byte at of the record.
type frameErr struct {
	at    int
	field string
	err   error
}

// head checks the record at the start of p as far as p goes and up to (not
// including) its data, leaving what it learns in f.l. The template name is
// checked once it and the length word after it are in p, or, with early,
// once the name alone is (detect's look at a second record).
func (f *framer) head(p []byte, o binary.ByteOrder, D int, early bool) *frameErr {
	l := &f.l
	l.named, l.legacy, l.t, l.total, l.cutAt = false, false, nil, 0, 0
	hdr := 8 + D
	if len(p) < hdr {
		l.need, l.cutField = hdr, "record header"
		return nil
	}
	l.pcr = o.Uint32(p)
	if l.pcr > MaxPCRIndex {
		return &frameErr{0, "pcr", malformed("pcr index %d exceeds %d", l.pcr, MaxPCRIndex)}
	}
	nl := int(o.Uint32(p[4+D:]))
	if nl == 0 || nl > MaxTemplateNameLen {
		return &frameErr{4 + D, "template name length", fmt.Errorf("%w: %d not in 1..%d", ErrTooLarge, nl, MaxTemplateNameLen)}
	}
	l.nameLen = nl
	at := hdr + nl
	if len(p) < at+4 && !(early && len(p) >= at) {
		l.need, l.cutField = at+4, "template name"
		return nil
	}
	name := p[hdr:at]
	if f.lookup {
		t, err := f.tc.lookup(name)
		if err != nil {
			if !f.allowUnknown || !printable(name) {
				return &frameErr{hdr, "template name", err}
			}
			t = &Template{Name: string(name), Custom: true}
		}
		l.t = t
	}
	l.named = true
	l.legacy = string(name) == TemplateIMA // a built-in, never custom
	if len(p) < at+4 {
		l.need, l.cutField = at+4, "template name"
		return nil
	}
	if l.legacy {
		// d (20 bytes, no length), u32 n_len, name without NUL.
		if len(p) < at+24 {
			l.need, l.cutField = at+24, "d"
			return nil
		}
		nlen := int(o.Uint32(p[at+20:]))
		if nlen > MaxEventNameLen {
			return &frameErr{at + 20, "n length", fmt.Errorf("%w: %d exceeds %d", ErrTooLarge, nlen, MaxEventNameLen)}
		}
		l.total, l.cutField = at+24+nlen, "n"
		return nil
	}
	dl := int64(o.Uint32(p[at:]))
	if dl > MaxTemplateDataLen {
		return &frameErr{at, "template data length", fmt.Errorf("%w: %d exceeds %d", ErrTooLarge, dl, MaxTemplateDataLen)}
	}
	l.dataAt = at + 4
	l.total, l.cutField, l.cutAt = at+4+int(dl), "template data", at+4
	return nil
}

func (f *framer) fail(off int64, field string, err error) error {
	return &FormatError{Offset: off, Entry: f.n, Field: field, Err: err}
}

func (f *framer) ioErr(at int64, err error) error {
	return fmt.Errorf("ima: entry %d at byte 0x%x: %w", f.n, at, err)
}

// cut reports a read of the record at f.off that ended early: a clean end
// is a FormatError wrapping io.ErrUnexpectedEOF at the item being read.
func (f *framer) cut(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return f.fail(f.off+int64(f.l.cutAt), f.l.cutField, io.ErrUnexpectedEOF)
	}
	return f.ioErr(f.off+int64(f.l.cutAt), err)
}

// next frames the next record: it sets e.PCR, e.Digest and e.Data (for
// "ima", d || name, the n_len word between them dropped) and f's record
// fields; io.EOF at a clean end. Unless f.owned, e's slices are valid until
// the next call.
func (f *framer) next(e *Entry) error {
	o, D := f.order, f.dsize
	// Everything buffered, so that one pass usually frames the record.
	p, _ := f.br.Peek(f.br.Buffered())
	if len(p) < 8+D {
		q, err := f.br.Peek(8 + D)
		if err != nil {
			if err != io.EOF {
				return f.ioErr(f.off, err)
			}
			switch {
			case len(q) == 0:
				return io.EOF
			case len(q) == 1 && q[0] == '\n':
				// One stray line feed after the last record (see Reader).
				f.trailing = true
				f.br.Discard(1)
				f.off++
				return io.EOF
			}
			return f.fail(f.off, "record header", io.ErrUnexpectedEOF)
		}
		p, _ = f.br.Peek(f.br.Buffered())
	}
	for {
		if fe := f.head(p, o, D, false); fe != nil {
			return f.fail(f.off+int64(fe.at), fe.field, fe.err)
		}
		if f.l.total > 0 {
			break
		}
		// The head parts are at most 8+64+255+24+255 bytes: they fit br.
		if _, err := f.br.Peek(f.l.need); err != nil {
			return f.cut(err)
		}
		p, _ = f.br.Peek(f.br.Buffered())
	}
	l := &f.l
	f.start = f.off
	e.PCR = l.pcr
	hdr := 8 + D
	at := hdr + l.nameLen
	if l.total > f.br.Size() {
		return f.readLarge(e, p)
	}
	f.owned = false
	if len(p) < l.total {
		var err error
		if p, err = f.br.Peek(l.total); err != nil {
			return f.cut(err)
		}
	}
	p = p[:l.total]
	// Peeked bytes stay valid until the next read from br.
	f.br.Discard(l.total)
	f.off += int64(l.total)
	e.Digest = p[4 : 4+D : 4+D]
	f.name = p[hdr:at]
	if l.legacy {
		// Shift d right over n_len: Data is d || name.
		copy(p[at+4:at+24], p[at:at+20])
		e.Data = p[at+4 : l.total : l.total]
	} else {
		e.Data = p[l.dataAt:l.total:l.total]
	}
	return nil
}

// readLarge reads a record longer than br's buffer ("ima" records never
// are) whose head is in p: digest || data into a buffer that grows as the
// data arrives (dataChunk at a time past the first dataChunk), so a cut
// record costs what was read, not what its length claims.
func (f *framer) readLarge(e *Entry, p []byte) error {
	l, D := &f.l, f.dsize
	f.nameBuf = append(f.nameBuf[:0], p[8+D:8+D+l.nameLen]...)
	f.name = f.nameBuf
	n := l.total - l.dataAt // data length
	var buf []byte
	if f.reuse {
		buf = f.big[:0]
	}
	buf = slices.Grow(buf, D+min(n, dataChunk))
	buf = append(buf, p[4:4+D]...)
	f.br.Discard(l.dataAt)
	for len(buf) < D+n {
		k := min(dataChunk, D+n-len(buf))
		buf = slices.Grow(buf, k)[:len(buf)+k]
		if _, err := io.ReadFull(f.br, buf[len(buf)-k:]); err != nil {
			if f.reuse {
				f.big = buf[:0]
			}
			return f.cut(err)
		}
	}
	if f.reuse {
		f.big = buf
	}
	f.off += int64(l.total)
	e.Digest = buf[:D:D]
	e.Data = buf[D:len(buf):len(buf)]
	f.owned = !f.reuse
	return nil
}

// detect chooses the byte order and digest size from the first record in p
// (ima-spec.md §2.2, go-style "Decoding"), filling in whichever of f.order
// and f.dsize is unset: every candidate is tried on the bytes of p, and the
// first sane one (PCR index <= 63, a known template name of 1..255
// printable bytes, data_len within limits and exactly filled by the
// template's fields) wins, preferring one whose next record header is also
// sane. Little-endian and 20-byte digests are tried first. An empty p (or a
// lone line feed) takes little-endian and 20.
func (f *framer) detect(p []byte) error {
	if len(p) == 0 || (len(p) == 1 && p[0] == '\n') {
		if f.order == nil {
			f.order = binary.LittleEndian
		}
		if f.dsize == 0 {
			f.dsize = 20
		}
		return nil
	}
	orders := []binary.ByteOrder{binary.LittleEndian, binary.BigEndian}
	if f.order != nil {
		orders = []binary.ByteOrder{f.order}
	}
	sizes := []int{20, 32, 48, 64}
	if f.dsize != 0 {
		sizes = []int{f.dsize}
	}
	var first binary.ByteOrder
	firstSize := 0
	for _, o := range orders {
		for _, d := range sizes {
			n, ok := f.saneFirst(p, o, d)
			if !ok {
				continue
			}
			var rest []byte
			if n > 0 {
				rest = p[n:]
			}
			if n < 0 || len(rest) == 0 || (len(rest) == 1 && rest[0] == '\n') || len(rest) < 8+d {
				// Nothing (or not enough) after the first record to compare.
				f.order, f.dsize = o, d
				return nil
			}
			if f.head(rest, o, d, true); f.l.named {
				f.order, f.dsize = o, d
				return nil
			}
			if first == nil {
				first, firstSize = o, d
			}
		}
	}
	if first != nil {
		f.order, f.dsize = first, firstSize
		return nil
	}
	return f.fail(0, "first record", malformed("cannot detect byte order and digest size: no candidate (little/big endian, digest 20/32/48/64) gives a sane record"))
}

// saneFirst checks a whole first record in p under order o and digest size
// d: its framing, a printable name, and fields that fill the data. It
// returns the record's length, or -1 if the record is longer than p (then
// only its start was checked).
func (f *framer) saneFirst(p []byte, o binary.ByteOrder, d int) (int, bool) {
	fe, l := f.head(p, o, d, false), &f.l
	if fe != nil || !l.named || !printable(p[8+d:8+d+l.nameLen]) {
		return 0, false
	}
	if l.total == 0 {
		return 0, false // cut before the data
	}
	if l.legacy {
		return l.total, len(p) >= l.total
	}
	data := p[l.dataAt:]
	if len(data) < l.total-l.dataAt {
		// Longer than what we can see: check what we can.
		if len(l.t.Fields) > 0 && len(data) >= 4 && int(o.Uint32(data)) > l.total-l.dataAt-4 {
			return 0, false
		}
		return -1, true
	}
	data = data[:l.total-l.dataAt]
	if len(l.t.Fields) > 0 {
		fields := make([]Field, len(l.t.Fields))
		if splitFields(data, l.t, o, fields) != nil {
			return 0, false
		}
	}
	return l.total, true
}
