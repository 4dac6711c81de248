package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// decode reads one JSON object into v, strictly: at most limit bytes,
// unknown fields rejected, nothing but white space after the object.
func decode(msg string, data []byte, limit int, v any) error {
	if len(data) > limit {
		return formatErr(msg, "", "%d bytes, more than %d", len(data), limit)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &FormatError{Message: msg, Field: te.Field, Err: err}
		}
		return &FormatError{Message: msg, Err: err}
	}
	if _, err := d.Token(); err != io.EOF {
		return formatErr(msg, "", "data after the JSON object")
	}
	return nil
}

// checkLen bounds a byte field.
func checkLen(msg, field string, b []byte, min, max int) error {
	if len(b) < min || len(b) > max {
		if min == max {
			return formatErr(msg, field, "%d bytes, want %d", len(b), min)
		}
		return formatErr(msg, field, "%d bytes, want %d to %d", len(b), min, max)
	}
	return nil
}

// checkToken bounds an opaque token.
func checkToken(msg string, t string) error {
	if t == "" || len(t) > MaxTokenSize {
		return formatErr(msg, "token", "%d bytes, want 1 to %d", len(t), MaxTokenSize)
	}
	return nil
}

// MaxTokenSize bounds the opaque tokens the verifier hands out and takes
// back.
const MaxTokenSize = 1024

// ValidNodeName reports whether s can name a node: 1 to 128 bytes of
// letters, digits, '.', '-', '_' and ':', not starting with '.' or '-'
// (it appears in URLs and logs as it is).
func ValidNodeName(s string) error {
	if len(s) == 0 || len(s) > 128 {
		return fmt.Errorf("attest: node name of %d bytes (want 1 to 128)", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':' ||
			(i > 0 && (c == '.' || c == '-'))
		if !ok {
			return fmt.Errorf("attest: node name %q: byte %d (%q) not allowed (letters, digits, . - _ :)", s, i, c)
		}
	}
	return nil
}
