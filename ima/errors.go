package ima

import (
	"errors"
	"fmt"
)

// FormatError reports malformed input. For a binary list Offset is the byte
// offset of the start of the record (or of the bad item when Field names
// one); for an ASCII list Offset is the 1-based line number. Entry is the
// 0-based index of the entry.
type FormatError struct {
	Offset int64
	Entry  int
	Field  string
	Err    error

	line bool // Offset is a line number
}

func (e *FormatError) Error() string {
	where := fmt.Sprintf("at byte 0x%x", e.Offset)
	if e.line {
		where = fmt.Sprintf("at line %d", e.Offset)
	}
	s := fmt.Sprintf("ima: entry %d %s", e.Entry, where)
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Err.Error()
}

func (e *FormatError) Unwrap() error { return e.Err }

// Sentinels wrapped by FormatError and the decoders; match with errors.Is.
var (
	// ErrUnknownTemplate: a template name that is neither a built-in
	// descriptor nor a valid custom format string (ima-spec.md §3.1, §3.2).
	ErrUnknownTemplate = errors.New("unknown template")
	// ErrTooLarge: a length from the input exceeds its named limit.
	ErrTooLarge = errors.New("length exceeds limit")
	// ErrMalformed: the bytes do not follow the layout of ima-spec.md §2-§3.
	ErrMalformed = errors.New("malformed")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
