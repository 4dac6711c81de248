package agent

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The socket protocol: one JSON request line, one JSON response line, per
// connection. A path or name is a byte string: a JSON string when it is
// valid UTF-8, else {"hex": "<hex>"} (the ima package's JSON form), so that
// every name a Linux filesystem allows travels unchanged.
type request struct {
	Op    string  `json:"op"` // "measure", "status", "late"
	Paths []Bytes `json:"paths,omitempty"`
}

type response struct {
	Status  *Status      `json:"status,omitempty"`
	Results []wireResult `json:"results,omitempty"`
	Error   string       `json:"error,omitempty"`
	Code    Code         `json:"code,omitempty"`
}

// wireResult is a Result on the socket, its path and name as bytes.
type wireResult struct {
	Path           Bytes  `json:"path"`
	Status         string `json:"status"`
	Name           *Bytes `json:"name,omitempty"`
	Digest         string `json:"digest,omitempty"`
	TemplateDigest string `json:"template_digest,omitempty"`
	Error          string `json:"error,omitempty"`
	Code           Code   `json:"code,omitempty"`
}

func toWire(r Result) wireResult {
	w := wireResult{Path: Bytes(r.Path), Status: r.Status, Digest: r.Digest,
		TemplateDigest: r.TemplateDigest, Error: r.Error, Code: r.Code}
	if r.Name != "" {
		n := Bytes(r.Name)
		w.Name = &n
	}
	return w
}

func fromWire(w wireResult) Result {
	r := Result{Path: string(w.Path), Status: w.Status, Digest: w.Digest,
		TemplateDigest: w.TemplateDigest, Error: w.Error, Code: w.Code}
	if w.Name != nil {
		r.Name = string(*w.Name)
	}
	return r
}

// Bytes is a byte string in JSON: a string when it is valid UTF-8, else
// {"hex": "<hex>"}.
type Bytes []byte

// MarshalJSON implements json.Marshaler.
func (b Bytes) MarshalJSON() ([]byte, error) {
	if utf8.Valid(b) {
		return json.Marshal(string(b))
	}
	return json.Marshal(struct {
		Hex string `json:"hex"`
	}{hex.EncodeToString(b)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		// encoding/json turns invalid UTF-8 and lone surrogate escapes
		// into U+FFFD: such a string does not name these bytes.
		if !utf8.Valid(data) || strings.ContainsRune(s, utf8.RuneError) && !sentFFFD(data) {
			return errors.New("agent: a string that is not valid UTF-8 (send {\"hex\": ...})")
		}
		*b = Bytes(s)
		return nil
	}
	var h struct {
		Hex *string `json:"hex"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || h.Hex == nil {
		return fmt.Errorf("agent: want a string or {\"hex\": ...}, got %.40s", data)
	}
	v, err := hex.DecodeString(*h.Hex)
	if err != nil {
		return fmt.Errorf("agent: hex: %w", err)
	}
	*b = v
	return nil
}

// surrogateEscape matches a \u escape of a UTF-16 surrogate, which
// encoding/json decodes to U+FFFD when it is not half of a pair.
var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F][0-9a-fA-F]{2}`)

// sentFFFD reports whether the U+FFFD in a JSON string were sent as such,
// rather than made by the decoder from a lone surrogate escape.
func sentFFFD(data []byte) bool { return !surrogateEscape.Match(data) }

// Code is the kind of an error the agent answers with, carried on the wire
// so that a client tells errors apart without reading their text.
type Code string

// Codes of a whole answer (response.Code) and of one path (Result.Code).
const (
	// CodeRefused: the peer's uid may not use the socket.
	CodeRefused Code = "refused"
	// CodeBusy: the peer has MaxConnsPerUID connections open already.
	CodeBusy Code = "busy"
	// CodeTooLong: the request line is longer than MaxRequest.
	CodeTooLong Code = "too_long"
	// CodeBadRequest: the request does not parse, names an unknown op or
	// too many paths, or a path is not absolute.
	CodeBadRequest Code = "bad_request"
	// CodeFailed: the agent has failed (the list and the TPM can no longer
	// be kept in step); it measures nothing until it is recovered.
	CodeFailed Code = "failed"
	// CodeNotReady: the agent has not started.
	CodeNotReady Code = "not_ready"
	// CodeStopping: the agent is shutting down.
	CodeStopping Code = "stopping"
	// CodeNotRegular: the path is not a regular file (the kernel measures
	// only regular files).
	CodeNotRegular Code = "not_regular"
	// CodeHashTimeout: hashing the file took longer than the hash limit.
	CodeHashTimeout Code = "hash_timeout"
	// CodeUnreadable: the file cannot be opened or read.
	CodeUnreadable Code = "unreadable"
	// CodeNotCommitted: listing the entry failed and nothing was committed
	// (the list, the exports and the TPM are as before).
	CodeNotCommitted Code = "not_committed"
	// CodeInternal: anything else.
	CodeInternal Code = "internal"
)

// Sentinels for the codes, for errors.Is on a *RemoteError or on
// Result.Err.
var (
	ErrRefused      = errors.New("agent: refused")
	ErrBusy         = errors.New("agent: too many connections")
	ErrTooLong      = errors.New("agent: request too long")
	ErrBadRequest   = errors.New("agent: bad request")
	ErrFailed       = errors.New("agent: failed")
	ErrNotReady     = errors.New("agent: not started")
	ErrStopping     = errors.New("agent: stopping")
	ErrNotRegular   = errors.New("agent: not a regular file")
	ErrHashTimeout  = errors.New("agent: hashing took too long")
	ErrUnreadable   = errors.New("agent: file cannot be read")
	ErrNotCommitted = errors.New("agent: not committed")
)

var codeErrs = map[Code]error{
	CodeRefused: ErrRefused, CodeBusy: ErrBusy, CodeTooLong: ErrTooLong, CodeBadRequest: ErrBadRequest,
	CodeFailed: ErrFailed, CodeNotReady: ErrNotReady, CodeStopping: ErrStopping,
	CodeNotRegular: ErrNotRegular, CodeHashTimeout: ErrHashTimeout, CodeUnreadable: ErrUnreadable,
	CodeNotCommitted: ErrNotCommitted,
}

// codeOf is the code for an error of the agent's own making: the first
// sentinel it wraps.
func codeOf(err error) Code {
	for c, s := range codeErrs {
		if errors.Is(err, s) {
			return c
		}
	}
	return CodeInternal
}

// codeError is an error with its code's sentinel: Error is the message,
// errors.Is matches the sentinel.
type codeError struct {
	code Code
	msg  string
	err  error // the cause, if any
}

func (e *codeError) Error() string { return e.msg }
func (e *codeError) Unwrap() []error {
	out := []error{}
	if s, ok := codeErrs[e.code]; ok {
		out = append(out, s)
	}
	if e.err != nil {
		out = append(out, e.err)
	}
	return out
}

// errorf makes an error with code c.
func errorf(c Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &codeError{code: c, msg: err.Error(), err: errors.Unwrap(err)}
}

// RemoteError is an error the agent answered a request with. errors.Is
// matches the sentinel of its Code (ErrRefused, ErrFailed, ...).
type RemoteError struct {
	Code Code
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

// Is matches the sentinel of e's code.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeErrs[e.Code]
	return ok && s == target
}
