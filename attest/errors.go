package attest

import "fmt"

// FormatError reports a message that is not well-formed: bad JSON, a field
// out of bounds, a missing field.
type FormatError struct {
	// Message is the message type ("evidence", "enroll request", ...).
	Message string
	// Field names the offending field, if one.
	Field string
	Err   error
}

func (e *FormatError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("attest: %s: %v", e.Message, e.Err)
	}
	return fmt.Sprintf("attest: %s: %s: %v", e.Message, e.Field, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(msg, field string, format string, args ...any) error {
	return &FormatError{Message: msg, Field: field, Err: fmt.Errorf(format, args...)}
}
