// Package plainjson reads and writes the plain JSON of the messages a
// verifier handles every round (evidence, challenge tokens, a node's
// appraisal state) without encoding/json's reflection, which costs about
// as much as checking a quote's signature.
//
// A Reader accepts only a strict subset of JSON: strings without escapes
// or control bytes, integers without fraction or exponent, JSON white
// space. Its methods report false for anything else; a decoder built on it
// then hands the input to encoding/json, which decides (and says why).
// Each such decoder is fuzzed against encoding/json: what it accepts,
// encoding/json decodes to the same value. The appenders write the bytes
// json.Marshal writes.
package plainjson

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
)

// Reader reads plain JSON from a byte slice.
type Reader struct {
	b []byte
	i int
}

// NewReader returns a Reader of b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// WS skips JSON white space.
func (r *Reader) WS() {
	for r.i < len(r.b) && (r.b[r.i] == ' ' || r.b[r.i] == '\t' || r.b[r.i] == '\n' || r.b[r.i] == '\r') {
		r.i++
	}
}

// Eat skips white space and reports whether c comes next, consuming it.
func (r *Reader) Eat(c byte) bool {
	r.WS()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// End skips white space and reports whether the input ends there.
func (r *Reader) End() bool {
	r.WS()
	return r.i == len(r.b)
}

// Str reads a string without escapes or control bytes; the bytes are the
// input's.
func (r *Reader) Str() ([]byte, bool) {
	if !r.Eat('"') {
		return nil, false
	}
	start := r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		r.i++
	}
	return nil, false
}

// ASCII reads a string of printable ASCII (encoding/json keeps such a
// string as it is; it replaces invalid UTF-8).
func (r *Reader) ASCII() (string, bool) {
	s, ok := r.Str()
	if !ok {
		return "", false
	}
	for _, c := range s {
		if c >= 0x7f {
			return "", false
		}
	}
	return string(s), true
}

// Base64 reads a string of standard base64, encoding/json's form of
// []byte: "" is an empty, non-nil slice, as encoding/json makes it.
func (r *Reader) Base64() ([]byte, bool) {
	s, ok := r.Str()
	if !ok {
		return nil, false
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return nil, false
	}
	return b[:n], true
}

// number reads the digits of an integer with an optional minus sign.
func (r *Reader) number() ([]byte, bool) {
	r.WS()
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	d := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	n := r.i - d
	if n == 0 || (n > 1 && r.b[d] == '0') {
		return nil, false
	}
	// A fraction or an exponent: encoding/json decides.
	if r.i < len(r.b) && (r.b[r.i] == '.' || r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		return nil, false
	}
	return r.b[start:r.i], true
}

// Uint reads an integer that fits in bits unsigned bits.
func (r *Reader) Uint(bits int) (uint64, bool) {
	d, ok := r.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(d), 10, bits)
	return v, err == nil
}

// Int reads an integer that fits in bits signed bits.
func (r *Reader) Int(bits int) (int64, bool) {
	d, ok := r.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(d), 10, bits)
	return v, err == nil
}

// Bool reads true or false.
func (r *Reader) Bool() (v, ok bool) {
	r.WS()
	switch {
	case len(r.b)-r.i >= 4 && string(r.b[r.i:r.i+4]) == "true":
		r.i += 4
		return true, true
	case len(r.b)-r.i >= 5 && string(r.b[r.i:r.i+5]) == "false":
		r.i += 5
		return false, true
	}
	return false, false
}

// Object reads an object, calling field for each key with the Reader at
// its value (after the colon); field reads the value and reports whether
// it could. A key may appear only once. Object reports false if field
// does, or if the input is not an object.
func (r *Reader) Object(field func(key []byte) bool) bool {
	if !r.Eat('{') {
		return false
	}
	if r.Eat('}') {
		return true
	}
	var buf [16][]byte
	seen := buf[:0]
	for {
		key, ok := r.Str()
		if !ok || !r.Eat(':') {
			return false
		}
		for _, k := range seen {
			if string(k) == string(key) {
				return false
			}
		}
		seen = append(seen, key)
		if !field(key) {
			return false
		}
		if r.Eat('}') {
			return true
		}
		if !r.Eat(',') {
			return false
		}
	}
}

// Array reads an array, calling elem for each element with the Reader at
// it. Array reports false if elem does, or if the input is not an array.
func (r *Reader) Array(elem func() bool) bool {
	if !r.Eat('[') {
		return false
	}
	if r.Eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if r.Eat(']') {
			return true
		}
		if !r.Eat(',') {
			return false
		}
	}
}

// AppendString appends s as json.Marshal writes a string: as it is when
// nothing in it needs escaping, else through encoding/json.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendBytes appends v as json.Marshal writes a []byte: standard base64,
// null for nil.
func AppendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}
