package ima

import (
	"bufio"
	"encoding/binary"
	"io"
	"iter"
)

// Format is the encoding of a measurement list.
type Format int

const (
	// FormatBinary is binary_runtime_measurements (ima-spec.md §2.3).
	FormatBinary Format = iota
	// FormatASCII is ascii_runtime_measurements (ima-spec.md §2.4).
	FormatASCII
)

func (f Format) String() string {
	if f == FormatASCII {
		return "ascii"
	}
	return "binary"
}

// ListReader reads a list in either format, chosen by NewListReader.
type ListReader struct {
	format Format
	bin    *Reader
	asc    *ASCIIReader
}

// NewListReader sniffs the first bytes of r and returns a reader for an
// ASCII list if they look like one ("<pcr> <hex digest> "; a binary record
// starts with a u32 PCR index, which never prints as decimal digits followed
// by a space and hex), and for a binary list otherwise. opts apply to either
// reader.
func NewListReader(r io.Reader, opts ReaderOptions) *ListReader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, readerBufSize)
	}
	p, _ := br.Peek(64)
	if LooksASCII(p) {
		return &ListReader{format: FormatASCII, asc: NewASCIIReader(br, opts)}
	}
	return &ListReader{format: FormatBinary, bin: NewReader(br, opts)}
}

// LooksASCII reports whether p starts like a line of an ASCII list: an
// optional space, one or two decimal digits, a space, then at least 40 hex
// digits (or all of p) followed by a space.
func LooksASCII(p []byte) bool {
	i := 0
	if i < len(p) && p[i] == ' ' {
		i++
	}
	j := i
	for j < len(p) && j-i < 3 && p[j] >= '0' && p[j] <= '9' {
		j++
	}
	if j == i || j-i > 2 || j >= len(p) || p[j] != ' ' {
		return false
	}
	h := 0
	for k := j + 1; k < len(p); k++ {
		c := p[k]
		if c == ' ' {
			return h >= 40
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
		h++
	}
	return h > 0
}

// Format returns the format chosen.
func (l *ListReader) Format() Format { return l.format }

// Next returns the next entry; io.EOF at the end.
func (l *ListReader) Next() (*Entry, error) {
	if l.asc != nil {
		return l.asc.Next()
	}
	return l.bin.Next()
}

// All iterates over the remaining entries.
func (l *ListReader) All() iter.Seq2[*Entry, error] {
	if l.asc != nil {
		return l.asc.All()
	}
	return l.bin.All()
}

// Offset returns the byte offset (binary) or line number (ASCII) reached.
func (l *ListReader) Offset() int64 {
	if l.asc != nil {
		return l.asc.Offset()
	}
	return l.bin.Offset()
}

// ByteOrder returns the byte order of the entries' Data: detected or given
// for binary, the rebuild order for ASCII.
func (l *ListReader) ByteOrder() binary.ByteOrder {
	if l.asc != nil {
		return l.asc.ByteOrder()
	}
	return l.bin.ByteOrder()
}

// DigestSize returns the template digest width.
func (l *ListReader) DigestSize() int {
	if l.asc != nil {
		return l.asc.DigestSize()
	}
	return l.bin.DigestSize()
}

// Binary returns the underlying binary reader, or nil for ASCII.
func (l *ListReader) Binary() *Reader { return l.bin }

// ASCII returns the underlying ASCII reader, or nil for binary.
func (l *ListReader) ASCII() *ASCIIReader { return l.asc }
