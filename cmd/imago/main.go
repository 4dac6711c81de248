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
	"time"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// signalGrace is how long a command has to return after SIGINT or SIGTERM
// before the process exits with status 130 anyway. Readers stop at the next
// read (see input.go); what Go cannot interrupt (open(2) of a FIFO that has
// no writer yet is waited on in a goroutine, but a read(2) from a terminal
// on stdin is not) ends here. The agent and the demo shut themselves down
// and are waited for.
const signalGrace = 300 * time.Millisecond

// testReadyEnv names a file that runMain creates once SIGINT and SIGTERM
// are handled, for tests that send them (before that, a signal ends the
// process the default way, killed by it).
const testReadyEnv = "IMAGO_TEST_SIGNALS_READY"

// errSignal is the cause of a context canceled by a signal.
type errSignal struct{ sig os.Signal }

func (e errSignal) Error() string { return "canceled by " + signalName(e.sig) }

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// runMain runs one command line with SIGINT and SIGTERM canceling it, and
// returns the exit status.
func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if p := os.Getenv(testReadyEnv); p != "" {
		os.WriteFile(p, nil, 0o600) // tests: the signals are ours from here on
	}

	st := &runState{}
	done := make(chan int, 1)
	go func() { done <- runWith(ctx, args, stdin, stdout, stderr, st) }()
	select {
	case code := <-done:
		return code
	case sig := <-sigs:
		cancel(errSignal{sig})
	}
	if st.selfStopping() {
		return <-done
	}
	select {
	case code := <-done:
		return code
	case <-time.After(signalGrace):
		fmt.Fprintf(stderr, "imago: %s%v\n", st.prefix(), context.Cause(ctx))
		return exitCanceled
	}
}

// run executes one imago command line and returns its exit status. Every
// error is reported here, once, with the "imago: " prefix.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runWith(ctx, args, stdin, stdout, stderr, &runState{})
}

func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, st *runState) int {
	root := newRootCommandState(&cli{stdin: stdin, stdout: stdout, stderr: stderr}, st)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "imago: %s%v\n", st.prefix(), context.Cause(ctx))
		return code
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintf(stderr, "imago: %v\n", err)
	}
	var ge *groupError
	switch {
	case errors.As(err, &ge):
		fmt.Fprint(stderr, "\n"+ge.cmd.UsageString())
	case code == exitUsage && isUsage(err):
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", cmd.CommandPath())
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
