package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// usageError marks a command line that does not make sense (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// inputError marks input that could not be read or parsed (exit 2).
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

func inputErr(err error) error {
	if err == nil {
		return nil
	}
	var ie *inputError
	if errors.As(err, &ie) {
		return err
	}
	return &inputError{err}
}

// failedError marks a check that ran and does not hold (exit 1). Its message
// has already been printed when silent is set.
type failedError struct {
	msg string
}

func (e *failedError) Error() string { return e.msg }

func failed(format string, a ...any) error { return &failedError{fmt.Sprintf(format, a...)} }

// unsupportedError marks something this machine or build cannot do (exit 3).
type unsupportedError struct{ err error }

func (e *unsupportedError) Error() string { return e.err.Error() }
func (e *unsupportedError) Unwrap() error { return e.err }

// restartError marks a failure of a long-running command that a restart
// cures (the agent's fanotify gate stopped): exit 4, which the service unit
// restarts.
type restartError struct{ err error }

func (e *restartError) Error() string { return e.err.Error() }
func (e *restartError) Unwrap() error { return e.err }

// errSilent wraps an error whose report was already printed.
var errSilent = errors.New("already reported")

type silentError struct{ err error }

func (e *silentError) Error() string { return e.err.Error() }
func (e *silentError) Unwrap() []error {
	return []error{e.err, errSilent}
}

func silent(err error) error { return &silentError{err} }

func exitCode(err error) int {
	var (
		ue *usageError
		ie *inputError
		fe *failedError
		ne *unsupportedError
		re *restartError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitCanceled
	case errors.As(err, &re):
		return exitRestart
	case errors.As(err, &fe):
		return exitFailed
	case errors.As(err, &ue), errors.As(err, &ie):
		return exitUsage
	case errors.As(err, &ne):
		return exitUnsupported
	}
	return exitUsage
}

func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}

// usageHint returns the subcommand words of args, for "run 'imago X --help'".
func usageHint(args []string) string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(words) == 2 {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}
