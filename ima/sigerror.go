package ima

import "fmt"

// SigHeaderError reports a malformed signature header (ima-spec.md §10.1).
// Offset is the byte of the signature value where the problem lies: 0 the
// type, 1 the version, 7 the sig_size, or the value's length when it is cut
// short. Err wraps ErrMalformed.
type SigHeaderError struct {
	Offset int
	Err    error
}

func (e *SigHeaderError) Error() string {
	return fmt.Sprintf("%v (signature byte %d)", e.Err, e.Offset)
}

func (e *SigHeaderError) Unwrap() error { return e.Err }

func sigMalformed(off int, format string, args ...any) error {
	return &SigHeaderError{Offset: off, Err: malformed(format, args...)}
}
