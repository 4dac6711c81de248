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
// allocates nothing per record (for a custom template format, only its name
// when it differs from the previous record's). The *Entry that Next returns, and every byte
// it points to, are valid only until the next call; Fields is always nil.
// Byte order and digest width must be known (DetectBinary finds them); use
// Reader for everything else. The first error is sticky; a clean end is
// io.EOF and a cut-short record a *FormatError wrapping io.ErrUnexpectedEOF.
type Scanner struct {
	f    framer
	e    Entry
	name []byte // template name of the previous record, e.Template's bytes
	err  error
}

// scanBuffer is the Scanner's read buffer; a record that does not fit is
// read into a separate buffer, reused, that grows as its bytes arrive.
const scanBuffer = 256 << 10

// NewScanner returns a Scanner over a binary list whose integers are in order
// and whose template digest column is digestSize bytes (20 for the classic
// list, the bank size for binary_runtime_measurements_<algo>).
func NewScanner(r io.Reader, order binary.ByteOrder, digestSize int) *Scanner {
	s := &Scanner{f: framer{br: bufio.NewReaderSize(r, scanBuffer), order: order, dsize: digestSize, reuse: true}}
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
func (s *Scanner) Offset() int64 { return s.f.off }

// TrailingNewline reports whether the list ended in one tolerated stray 0x0a
// byte, as Reader.TrailingNewline does: the Scanner shares Reader's framing.
func (s *Scanner) TrailingNewline() bool { return s.f.trailing }

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
	s.f.n++
	return e, nil
}

func (s *Scanner) next() (*Entry, error) {
	e := &s.e
	if err := s.f.next(e); err != nil {
		return nil, err
	}
	if string(s.f.name) != string(s.name) {
		s.name = append(s.name[:0], s.f.name...)
		// A built-in template's name is its constant; only a custom format
		// string costs an allocation, when the name changes.
		if t := builtinTemplate(s.f.name); t != nil {
			e.Template = t.Name
		} else {
			e.Template = string(s.f.name)
		}
	}
	e.Order = s.f.order
	e.Fields = nil
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
		return scanASCII(br, opts)
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
