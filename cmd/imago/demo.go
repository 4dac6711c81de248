package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/agent"
	"github.com/imago-ima/imago/tpm"
)

func newDemoCommand(c *cli) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the agent on the embedded TPM simulator and check its list",
		Long: `Run the measurement agent in this process on the embedded TPM simulator, the
way the kernel's late-TPM patch starts: the TPM is not there at the first
stage (deferred), a file is measured meanwhile (queued durably), the TPM
appears, the list begins with boot_aggregate_late followed by the queued
measurement, more files are measured, and finally the list is checked with
'imago log check' against the simulator's PCRs. Everything it does is
printed.

Needs a cgo build (the simulator). Exit status: 0 the list matches the TPM,
1 it does not, 3 the simulator is not built in.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), c, dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "keep the demo's files (list, exports, measured files) in this directory")
	return cmd
}

// lockedBuffer collects the agent's log lines for the narrative.
type lockedBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	seen int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// drain returns the lines written since the last call.
func (l *lockedBuffer) drain() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()[l.seen:]
	l.seen = l.b.Len()
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func runDemo(ctx context.Context, c *cli, dir string) error {
	if !tpm.Available("sim") {
		return &unsupportedError{tpm.ErrSimulatorNotBuilt}
	}
	out := c.stdout
	if dir == "" {
		d, err := os.MkdirTemp("", "imago-demo")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		return err
	}
	contents := []struct{ name, body string }{
		{"early-init.sh", "#!/bin/sh\necho measured while the TPM was not there yet\n"},
		{"hello.sh", "#!/bin/sh\necho hello\n"},
		{"config.txt", "answer = 42\n"},
		{"name with spaces.bin", "\x00\x01\x02 bytes\n"},
	}
	var paths []string
	for _, f := range contents {
		p := filepath.Join(files, f.name)
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			return err
		}
		paths = append(paths, p)
	}

	// The simulator stands for a TPM whose driver registers late: it is
	// "not there" until appeared is set.
	var appeared atomic.Bool
	logs := &lockedBuffer{}
	cfg := agent.Config{
		TPM:          "sim",
		StateDir:     filepath.Join(dir, "state"),
		RuntimeDir:   filepath.Join(dir, "run"),
		Socket:       filepath.Join(dir, "agent.sock"),
		PCR:          agent.DefaultPCR,
		TPMWait:      time.Minute,
		PollInterval: 10 * time.Millisecond,
		SecurityFS:   filepath.Join(dir, "no-securityfs"), // the demo's PCR 10 is the simulator's
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{ReplaceAttr: dropTime})),
		Open: func(string) (agent.TPM, error) {
			if !appeared.Load() {
				return nil, fmt.Errorf("%w: (demo) the TPM driver has not registered yet", tpm.ErrNoTPM)
			}
			t, err := tpm.Open("sim")
			if err != nil {
				return nil, err
			}
			return t, nil
		},
		Available: func(string) bool { return appeared.Load() },
	}
	if len(cfg.Socket) > 100 {
		sd, err := os.MkdirTemp("", "imago-demo-sock")
		if err != nil {
			return err
		}
		defer os.RemoveAll(sd)
		cfg.Socket = filepath.Join(sd, "agent.sock")
	}
	showLogs := func() {
		for _, l := range logs.drain() {
			if l != "" {
				fmt.Fprintf(out, "     agent: %s\n", l)
			}
		}
	}
	fmt.Fprintf(out, "imago demo: the IMA measurement agent on the embedded TPM simulator (files in %s)\n\n", dir)

	fmt.Fprintln(out, "1. first stage: the TPM is not there yet")
	a, err := agent.New(ctx, cfg)
	if err != nil {
		showLogs()
		return agentErr(err)
	}
	defer a.Close()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx) }()
	defer func() { stop(); <-served }()
	if err := waitSocket(ctx, cfg.Socket, served); err != nil {
		return err
	}
	showLogs()
	st, err := agent.QueryStatus(ctx, cfg.Socket)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   state: %s\n\n", st.State)

	fmt.Fprintln(out, "2. a file is measured while deferred: kept durably, not lost")
	if err := demoMeasure(ctx, out, cfg.Socket, paths[:1]); err != nil {
		return err
	}

	fmt.Fprintln(out, "\n3. the TPM appears: late stage")
	appeared.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err = agent.QueryStatus(ctx, cfg.Socket); err != nil {
			return err
		}
		if st.State != "deferred" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	showLogs()
	fmt.Fprintf(out, "   state: %s, aggregate %s, banks %s, %d entries\n\n", st.State, st.Aggregate, strings.Join(st.Banks, ","), st.Entries)
	if st.State != "initialised" {
		return failed("demo: the agent did not initialise with the TPM (%s)", st.State)
	}

	fmt.Fprintln(out, "4. more files measured: listed, fsynced, extended into every bank, exported")
	self, _ := os.Executable()
	more := paths[1:]
	if self != "" {
		more = append(more, self)
	}
	if err := demoMeasure(ctx, out, cfg.Socket, more); err != nil {
		return err
	}
	fmt.Fprintln(out, "\n5. an unchanged file measured again: not listed twice")
	if err := demoMeasure(ctx, out, cfg.Socket, paths[1:2]); err != nil {
		return err
	}

	ascii, err := os.ReadFile(filepath.Join(cfg.RuntimeDir, "ascii_runtime_measurements"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n6. the list (%s):\n", filepath.Join(cfg.RuntimeDir, "ascii_runtime_measurements"))
	for _, l := range strings.Split(strings.TrimSuffix(string(ascii), "\n"), "\n") {
		fmt.Fprintf(out, "   %s\n", l)
	}

	// The simulator's PCRs, read through the agent (the simulator lives in
	// this process), checked with `imago log check`.
	set, err := a.ReadPCRs([]int{agent.DefaultPCR})
	if err != nil {
		return err
	}
	var js bytes.Buffer
	if err := writeJSON(&js, set); err != nil {
		return err
	}
	pcrsFile := filepath.Join(dir, "simulator-pcrs.json")
	if err := os.WriteFile(pcrsFile, js.Bytes(), 0o644); err != nil {
		return err
	}
	list := filepath.Join(cfg.RuntimeDir, "binary_runtime_measurements")
	fmt.Fprintf(out, "\n7. imago log check %s --pcrs %s\n", list, pcrsFile)
	var checkOut bytes.Buffer
	sub := &cli{stdin: c.stdin, stdout: &checkOut, stderr: &checkOut}
	root := newRootCommand(sub)
	root.SetArgs([]string{"log", "check", list, "--pcrs", pcrsFile})
	root.SetOut(&checkOut)
	root.SetErr(&checkOut)
	cerr := root.ExecuteContext(ctx)
	for _, l := range strings.Split(strings.TrimSuffix(checkOut.String(), "\n"), "\n") {
		fmt.Fprintf(out, "   %s\n", l)
	}
	if cerr != nil {
		fmt.Fprintf(out, "\nresult: the list does NOT replay to the simulator's PCRs\n")
		return cerr
	}
	fmt.Fprintf(out, "\nresult: the list replays to the simulator's PCR %d in every bank\n", agent.DefaultPCR)
	return nil
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func waitSocket(ctx context.Context, socket string, served <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := agent.QueryStatus(ctx, socket); err == nil {
			return nil
		}
		select {
		case err := <-served:
			return fmt.Errorf("demo: agent stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("demo: the agent's socket did not come up")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func demoMeasure(ctx context.Context, out io.Writer, socket string, paths []string) error {
	res, err := agent.MeasurePaths(ctx, socket, paths)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Status == agent.StatusError {
			return fmt.Errorf("demo: measuring %s: %s", r.Path, r.Error)
		}
		fmt.Fprintf(out, "   %-9s %s\n", r.Status, r.Path)
	}
	return nil
}
