package ima

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
)

// Scanner reads the records of a binary measurement list (ima-spec.md §2.3)
// for hot paths such as replay: it does not split template fields and
// allocates nothing per record. The *Entry that Next returns, and every byte
// it points to, are valid only until the next call; Fields is always nil.
// Byte order and digest width must be known (DetectBinary finds them); use
// Reader for everything else. The first error is sticky; a clean end is
// io.EOF and a cut-short record a *FormatError wrapping io.ErrUnexpectedEOF.
type Scanner struct {
	br    *bufio.Reader
	order binary.ByteOrder
	dsize int
	e     Entry
	name  []byte // template name of the previous record, e.Template's bytes
	buf   []byte // record bytes too long for the bufio buffer
	off   int64
	n     int
	err   error
}

// scanBuffer is the Scanner's read buffer; a record that does not fit is
// copied into a separate buffer bounded by MaxTemplateDataLen.
const scanBuffer = 256 << 10

// NewScanner returns a Scanner over a binary list whose integers are in order
// and whose template digest column is digestSize bytes (20 for the classic
// list, the bank size for binary_runtime_measurements_<algo>).
func NewScanner(r io.Reader, order binary.ByteOrder, digestSize int) *Scanner {
	s := &Scanner{br: bufio.NewReaderSize(r, scanBuffer), order: order, dsize: digestSize}
	if order == nil || digestSize <= 0 || digestSize > MaxDigestSize {
		s.err = fmt.Errorf("ima: scanner: byte order %v and digest size %d: %w", order, digestSize, ErrMalformed)
	}
	return s
}

// DetectBinary reads the first record of a binary list from prefix (the
// list's first bytes; 64 KiB is plenty) with a Reader and returns the byte
// order and digest width it chose, for NewScanner.
func DetectBinary(prefix []byte, opts ReaderOptions) (binary.ByteOrder, int, error) {
	r := NewReader(bytes.NewReader(prefix), opts)
	if _, err := r.Next(); err != nil && err != io.EOF {
		return nil, 0, err
	}
	return r.ByteOrder(), r.DigestSize(), nil
}

// Offset returns the byte offset of the next record.
func (s *Scanner) Offset() int64 { return s.off }

// All iterates over the remaining records, yielding the first error (with a
// nil entry) and stopping there; a clean end yields nothing more.
func (s *Scanner) All() iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
		for {
			e, err := s.Next()
			if err == io.EOF {
				return
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// Next returns the next record; see Scanner for how long it stays valid.
func (s *Scanner) Next() (*Entry, error) {
	if s.err != nil {
		return nil, s.err
	}
	e, err := s.next()
	if err != nil {
		s.err = err
		return nil, err
	}
	s.n++
	return e, nil
}

func (s *Scanner) fail(off int64, field string, err error) error {
	return &FormatError{Offset: off, Entry: s.n, Field: field, Err: err}
}

// need returns the next n bytes of the record without consuming them.
func (s *Scanner) need(n int, field string) ([]byte, error) {
	p, err := s.br.Peek(n)
	if err == nil {
		return p, nil
	}
	if err == io.EOF {
		return nil, s.fail(s.off, field, io.ErrUnexpectedEOF)
	}
	if err == bufio.ErrBufferFull {
		return nil, nil // caller reads into s.buf
	}
	return nil, fmt.Errorf("ima: entry %d at byte 0x%x: %w", s.n, s.off, err)
}

func (s *Scanner) next() (*Entry, error) {
	o, D := s.order, s.dsize
	hdr := 8 + D
	p, err := s.br.Peek(hdr)
	if err != nil {
		if err != io.EOF {
			return nil, fmt.Errorf("ima: entry %d at byte 0x%x: %w", s.n, s.off, err)
		}
		switch {
		case len(p) == 0:
			return nil, io.EOF
		case len(p) == 1 && p[0] == '\n': // see Reader: one stray line feed
			s.br.Discard(1)
			s.off++
			return nil, io.EOF
		}
		return nil, s.fail(s.off, "record header", io.ErrUnexpectedEOF)
	}
	pcrIdx := o.Uint32(p)
	if pcrIdx > MaxPCRIndex {
		return nil, s.fail(s.off, "pcr", malformed("pcr index %d exceeds %d", pcrIdx, MaxPCRIndex))
	}
	nameLen := int(o.Uint32(p[4+D:]))
	if nameLen == 0 || nameLen > MaxTemplateNameLen {
		return nil, s.fail(s.off+int64(4+D), "template name length", fmt.Errorf("%w: %d not in 1..%d", ErrTooLarge, nameLen, MaxTemplateNameLen))
	}
	if p, err = s.need(hdr+nameLen+4, "template name"); err != nil {
		return nil, err
	}
	name := p[hdr : hdr+nameLen]
	legacy := string(name) == "ima"
	var total int // record length
	if legacy {
		// d (20 bytes, no length), u32 n_len, name without NUL.
		if p, err = s.need(hdr+nameLen+24, "d"); err != nil {
			return nil, err
		}
		nlen := int(o.Uint32(p[hdr+nameLen+20:]))
		if nlen > MaxEventNameLen {
			return nil, s.fail(s.off+int64(hdr+nameLen+20), "n length", fmt.Errorf("%w: %d exceeds %d", ErrTooLarge, nlen, MaxEventNameLen))
		}
		total = hdr + nameLen + 24 + nlen
	} else {
		dataLen := int64(o.Uint32(p[hdr+nameLen:]))
		if dataLen > MaxTemplateDataLen {
			return nil, s.fail(s.off+int64(hdr+nameLen), "template data length", fmt.Errorf("%w: %d exceeds %d", ErrTooLarge, dataLen, MaxTemplateDataLen))
		}
		total = hdr + nameLen + 4 + int(dataLen)
	}
	rec, err := s.need(total, "template data")
	if err != nil {
		return nil, err
	}
	if rec == nil { // longer than the bufio buffer: bounded by the checks above
		if cap(s.buf) < total {
			s.buf = make([]byte, total)
		}
		rec = s.buf[:total]
		if _, err := io.ReadFull(s.br, rec); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, s.fail(s.off, "template data", io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("ima: entry %d at byte 0x%x: %w", s.n, s.off, err)
		}
	} else {
		// Peeked bytes stay valid until the next read; consume them now so
		// that the next Peek moves on.
		s.br.Discard(total)
	}
	s.off += int64(total)
	name = rec[hdr : hdr+nameLen] // p may have been overwritten
	e := &s.e
	e.PCR = pcrIdx
	e.Digest = rec[4 : 4+D : 4+D]
	if string(name) != string(s.name) {
		s.name = append(s.name[:0], name...)
		e.Template = string(name)
	}
	e.Order = o
	e.Fields = nil
	if legacy {
		// The "ima" hash input is d || name (WriteHashInput pads it); the
		// n_len word between them is dropped by shifting d right over it.
		at := hdr + nameLen
		copy(rec[at+4:at+24], rec[at:at+20])
		e.Data = rec[at+4 : total]
	} else {
		e.Data = rec[hdr+nameLen+4 : total]
	}
	return e, nil
}

// ScanList returns the entries of a measurement list for hot paths such as
// replay: a binary list (byte order and digest width from opts, or detected
// from the first record as Reader does) through a Scanner, so that entries
// are only valid until the next one and carry no Fields; an ASCII list
// through an ASCIIReader. Errors are yielded as by Reader.All.
func ScanList(r io.Reader, opts ReaderOptions) iter.Seq2[*Entry, error] {
	br := bufio.NewReaderSize(r, scanBuffer)
	prefix, err := br.Peek(64 << 10)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return func(yield func(*Entry, error) bool) { yield(nil, err) }
	}
	if LooksASCII(prefix) {
		return NewASCIIReader(br, opts).All()
	}
	order, dsize := opts.Order, opts.DigestSize
	if order == nil || dsize == 0 {
		o, d, err := DetectBinary(prefix, opts)
		if err != nil {
			return func(yield func(*Entry, error) bool) { yield(nil, err) }
		}
		if len(prefix) == 0 {
			return func(func(*Entry, error) bool) {}
		}
		order, dsize = o, d
	}
	return NewScanner(br, order, dsize).All()
}
