package runtimepolicy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// lexer reads JSON tokens from a stream without holding the document: the
// digests of a policy with a million paths pass through a fixed buffer.
type lexer struct {
	br   *bufio.Reader
	off  int64 // bytes consumed
	line int   // 1-based line of the next byte
	err  error
	slow bool // no fastMembers (tests)
	// rec is the record of the digest map member being read token by
	// token.
	rec record
}

const lexBuffer = 256 << 10

func newLexer(r io.Reader) *lexer {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, lexBuffer)
	}
	return &lexer{br: br, line: 1}
}

// fail records and returns a *FormatError at the current position.
func (l *lexer) fail(format string, args ...any) error { return l.failAt(l.off, format, args...) }

// failAt is fail at an earlier offset of the current line.
func (l *lexer) failAt(off int64, format string, args ...any) error {
	if l.err == nil {
		l.err = &FormatError{Offset: off, Line: l.line, Err: fmt.Errorf(format, args...)}
	}
	return l.err
}

func (l *lexer) eof() error {
	if l.err == nil {
		l.err = &FormatError{Offset: l.off, Line: l.line, Err: fmt.Errorf("%w: document cut short", io.ErrUnexpectedEOF)}
	}
	return l.err
}

// window returns the buffered bytes, reading more if none are buffered; it
// is empty only at the end of the input.
func (l *lexer) window() ([]byte, error) {
	if l.br.Buffered() == 0 {
		if _, err := l.br.Peek(1); err != nil {
			if err == io.EOF {
				return nil, nil
			}
			return nil, l.readErr(err)
		}
	}
	w, _ := l.br.Peek(l.br.Buffered())
	return w, nil
}

func (l *lexer) readErr(err error) error {
	if l.err == nil {
		l.err = fmt.Errorf("runtimepolicy: reading at byte %d: %w", l.off, err)
	}
	return l.err
}

func (l *lexer) discard(n int) {
	l.br.Discard(n)
	l.off += int64(n)
}

// next skips white space and returns the next byte without consuming it; 0
// at the end of the input.
func (l *lexer) next() (byte, error) {
	for {
		w, err := l.window()
		if err != nil {
			return 0, err
		}
		if len(w) == 0 {
			return 0, nil
		}
		for i, c := range w {
			switch c {
			case ' ', '\t', '\r':
			case '\n':
				l.line++
			default:
				l.discard(i)
				return c, nil
			}
		}
		l.discard(len(w))
	}
}

// expect consumes c, after white space.
func (l *lexer) expect(c byte, what string) error {
	got, err := l.next()
	if err != nil {
		return err
	}
	if got == 0 {
		return l.eof()
	}
	if got != c {
		return l.fail("want %q %s, got %q", c, what, got)
	}
	l.discard(1)
	return nil
}

// more reads the separator after a member or element: true after ',',
// false after the closing byte.
func (l *lexer) more(closing byte) (bool, error) {
	c, err := l.next()
	if err != nil {
		return false, err
	}
	switch c {
	case ',':
		l.discard(1)
		return true, nil
	case closing:
		l.discard(1)
		return false, nil
	case 0:
		return false, l.eof()
	}
	return false, l.fail("want ',' or %q, got %q", closing, c)
}

// empty consumes closing if it comes next (an empty object or array).
func (l *lexer) empty(closing byte) (bool, error) {
	c, err := l.next()
	if err != nil {
		return false, err
	}
	if c == closing {
		l.discard(1)
		return true, nil
	}
	return false, nil
}

// str reads a JSON string, appending its decoded bytes to dst. At most max
// bytes are read for it.
func (l *lexer) str(dst []byte, max int) ([]byte, error) { return l.string(dst, max, true) }

// strNoCtl is str for a string the caller validates itself (hex digits):
// control characters are not looked for.
func (l *lexer) strNoCtl(dst []byte, max int) ([]byte, error) { return l.string(dst, max, false) }

func (l *lexer) string(dst []byte, max int, ctl bool) ([]byte, error) {
	if err := l.expect('"', "to open a string"); err != nil {
		return dst, err
	}
	start, at := len(dst), l.off
	for {
		w, err := l.window()
		if err != nil {
			return dst, err
		}
		if len(w) == 0 {
			return dst, l.eof()
		}
		q := bytes.IndexByte(w, '"')
		seg := w
		if q >= 0 {
			seg = w[:q]
		}
		if b := bytes.IndexByte(seg, '\\'); b >= 0 {
			seg = seg[:b]
		}
		if ctl {
			for i, c := range seg {
				if c < 0x20 {
					l.discard(i)
					return dst, l.fail("control character 0x%02x in a string", c)
				}
			}
		}
		if len(dst)-start+len(seg) > max {
			// At the string's start, wherever the buffer cut it.
			return dst, l.failAt(at, "string longer than %d bytes", max)
		}
		dst = append(dst, seg...)
		l.discard(len(seg))
		if len(seg) == len(w) {
			continue
		}
		c := w[len(seg)]
		l.discard(1)
		if c == '"' {
			return dst, nil
		}
		if dst, err = l.escape(dst); err != nil {
			return dst, err
		}
	}
}

// escape decodes one escape sequence after its backslash.
func (l *lexer) escape(dst []byte) ([]byte, error) {
	c, err := l.br.ReadByte()
	if err != nil {
		return dst, l.eof()
	}
	l.off++
	switch c {
	case '"', '\\', '/':
		return append(dst, c), nil
	case 'b':
		return append(dst, '\b'), nil
	case 'f':
		return append(dst, '\f'), nil
	case 'n':
		return append(dst, '\n'), nil
	case 'r':
		return append(dst, '\r'), nil
	case 't':
		return append(dst, '\t'), nil
	case 'u':
		r, err := l.hex4()
		if err != nil {
			return dst, err
		}
		if utf16.IsSurrogate(r) {
			// A pair \uD8xx\uDCxx is one character; a lone surrogate
			// becomes U+FFFD.
			if p, _ := l.br.Peek(2); len(p) == 2 && p[0] == '\\' && p[1] == 'u' {
				l.discard(2)
				r2, err := l.hex4()
				if err != nil {
					return dst, err
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					return utf8.AppendRune(dst, d), nil
				}
				return utf8.AppendRune(utf8.AppendRune(dst, utf8.RuneError), r2), nil
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r), nil
	}
	return dst, l.fail("invalid escape \\%c", c)
}

func (l *lexer) hex4() (rune, error) {
	var r rune
	for range 4 {
		c, err := l.br.ReadByte()
		if err != nil {
			return 0, l.eof()
		}
		l.off++
		v := hexVal(c)
		if v < 0 {
			return 0, l.fail("invalid \\u escape")
		}
		r = r<<4 | rune(v)
	}
	return r, nil
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// errRawTooLarge is a captured value over its limit.
var errRawTooLarge = errors.New("value too large")

// raw reads one JSON value whole, checks that it is valid JSON, and returns
// its bytes (at most max).
func (l *lexer) raw(max int) ([]byte, error) {
	c, err := l.next()
	if err != nil {
		return nil, err
	}
	if c == 0 {
		return nil, l.eof()
	}
	var out []byte
	depth := 0
	inStr, esc := false, false
	for {
		w, err := l.window()
		if err != nil {
			return nil, err
		}
		if len(w) == 0 {
			if depth == 0 && !inStr && len(out) > 0 {
				return l.checkRaw(out)
			}
			return nil, l.eof()
		}
		for i, c := range w {
			if inStr {
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
					if depth == 0 {
						out = append(out, w[:i+1]...)
						l.discard(i + 1)
						return l.checkRaw(out)
					}
				}
				continue
			}
			switch c {
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					out = append(out, w[:i+1]...)
					l.discard(i + 1)
					return l.checkRaw(out)
				}
				if depth < 0 {
					out = append(out, w[:i]...)
					l.discard(i)
					return l.checkRaw(out)
				}
			case ',', ' ', '\t', '\r', '\n':
				if depth == 0 {
					out = append(out, w[:i]...)
					l.discard(i)
					return l.checkRaw(out)
				}
				if c == '\n' {
					l.line++
				}
			}
		}
		if len(out)+len(w) > max {
			return nil, l.fail("%w: more than %d bytes", errRawTooLarge, max)
		}
		out = append(out, w...)
		l.discard(len(w))
	}
}

func (l *lexer) checkRaw(b []byte) ([]byte, error) {
	if !json.Valid(b) {
		return nil, l.fail("invalid JSON value %q", clip(string(b)))
	}
	return b, nil
}

// end checks that only white space follows the document.
func (l *lexer) end() error {
	c, err := l.next()
	if err != nil {
		return err
	}
	if c != 0 {
		return l.fail("data after the end of the document")
	}
	return nil
}
