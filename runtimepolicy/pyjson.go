package runtimepolicy

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// appendPyString appends s as a JSON string the way Python's json.dumps
// writes it with its defaults (ensure_ascii): \" \\ \n \r \t \b \f, other
// control characters and every non-ASCII character as \uXXXX (lower-case,
// surrogate pairs above U+FFFF). Bytes that are not UTF-8 become U+FFFD.
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && pyPlain[s[j]] {
			j++
		}
		b = append(b, s[i:j]...) // a run written as it is, in one copy
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"':
				b = append(b, `\"`...)
			case c == '\\':
				b = append(b, `\\`...)
			case c == '\n':
				b = append(b, `\n`...)
			case c == '\r':
				b = append(b, `\r`...)
			case c == '\t':
				b = append(b, `\t`...)
			case c == '\b':
				b = append(b, `\b`...)
			case c == '\f':
				b = append(b, `\f`...)
			case c < 0x20:
				b = appendU(b, rune(c))
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			b = appendU(appendU(b, r1), r2)
			continue
		}
		b = appendU(b, r)
	}
	return append(b, '"')
}

// pyPlain marks the bytes json.dumps writes as they are: printable ASCII
// but '"' and '\\'.
var pyPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&15], hexDigits[r>>8&15], hexDigits[r>>4&15], hexDigits[r&15])
}

// appendPyValue re-encodes a valid raw JSON value in Python's json.dumps
// style, keeping the order of object members. Numbers are copied as written.
func appendPyValue(b []byte, raw json.RawMessage) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case json.Delim:
			open := byte(t)
			b = append(b, open)
			first := true
			for dec.More() {
				if !first {
					b = append(b, ", "...)
				}
				first = false
				if open == '{' {
					k, err := dec.Token()
					if err != nil {
						return false
					}
					ks, _ := k.(string)
					b = appendPyString(b, ks)
					b = append(b, ": "...)
				}
				if !walk() {
					return false
				}
			}
			end, err := dec.Token()
			if err != nil {
				return false
			}
			b = append(b, byte(end.(json.Delim)))
		case string:
			b = appendPyString(b, t)
		case json.Number:
			b = append(b, t...)
		case bool:
			if t {
				b = append(b, "true"...)
			} else {
				b = append(b, "false"...)
			}
		case nil:
			b = append(b, "null"...)
		}
		return true
	}
	n := len(b)
	if !walk() {
		return append(b[:n], raw...)
	}
	return b
}
