// Command imago reads, writes, replays and checks Linux IMA measurement lists
// and TCG firmware event logs, and runs a userspace IMA measurement agent.
//
// Exit status, for every subcommand:
//
//	0   the command ran and what it checked holds
//	1   verification failed: a PCR, boot aggregate or template digest does not match
//	2   bad usage, or input that cannot be read or parsed
//	3   not supported here (no TPM, no fanotify, simulator not built in)
//	4   the agent stopped on a failure a restart cures (its gate stopped)
//	130 canceled (SIGINT, SIGTERM)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one imago command line and returns its exit status. Every
// error is reported here, once, with the "imago: " prefix.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(&cli{stdin: stdin, stdout: stdout, stderr: stderr})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := exitCode(err)
	if !errors.Is(err, errSilent) {
		fmt.Fprintf(stderr, "imago: %v\n", err)
	}
	if code == exitUsage && isUsage(err) {
		fmt.Fprintf(stderr, "run 'imago %s --help' for usage\n", usageHint(args))
	}
	return code
}

// Exit statuses; see the package comment.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnsupported = 3
	exitRestart     = 4
	exitCanceled    = 130
)
