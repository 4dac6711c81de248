package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
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

// asFailure makes err a failed check (exit 1).
func asFailure(err error) error { return &failedError{err.Error()} }

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
	var ge *groupError
	return errors.As(err, &ue) || errors.As(err, &ge)
}

// groupError is a missing or unknown subcommand of a group ("imago log
// sho"): a usage error, reported with the group's usage.
type groupError struct {
	cmd *cobra.Command
	msg string
}

func (e *groupError) Error() string { return e.msg }

// unknownSubcommand is what a group answers when args do not start with
// one of its subcommands.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	where := ""
	if cmd.HasParent() {
		where = commandName(cmd) + ": "
	}
	if len(args) == 0 {
		return &groupError{cmd, where + "missing command"}
	}
	msg := fmt.Sprintf("%sunknown command %q", where, args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &groupError{cmd, msg}
}
