package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/agent"
	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/keyfile"
	"github.com/imago-ima/imago/internal/sdnotify"
	"github.com/imago-ima/imago/tpm"
)

// agentFlags are `imago agent`'s options.
type agentFlags struct {
	tpm, init, hash, template string
	pcr                       int
	stateDir, runtimeDir      string
	socket                    string
	tpmWait, poll             time.Duration
	hashTimeout               time.Duration
	maxConns                  int
	logLevel, logFormat       string

	// The gate.
	watch                  []string
	policy, keyring        string
	appraise, gateFail     string
	gateWorkers, gateQueue int
	gateTimeout            time.Duration
	kernelCache            bool

	adopt adoptFlags // issue 11
}

func newAgentCommand(c *cli) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the userspace IMA measurement agent",
		Long: `Run the measurement agent: it measures the files asked for with 'imago measure'
(a Unix socket, root only), appends kernel-format entries to a durable binary
list in --state-dir, extends every allocated PCR bank of the TPM, and keeps
securityfs-style exports in --runtime-dir.

It starts as the kernel's late-TPM patch does. First stage: the TPM is there,
the list begins with boot_aggregate; it is not ("TPM not available, will try
later"), the agent waits, keeping measurements durably, until the TPM appears,
--tpm-wait expires or 'imago late' is run, and then begins the list with
boot_aggregate_late (real aggregate, or zeros in TPM-bypass). --tpm none
starts in bypass at once ("No TPM chip found, activating TPM-bypass!").
--init late never initialises at the first stage.

--tpm: auto (the first /dev/tpmrm<N>, else /dev/tpm<N>), a device path,
tcp://HOST:PORT (swtpm --server), unix:///PATH, sim (embedded simulator, cgo
builds only) or none.

Every measurement is appended to the list and fsynced, exported, and extended
under a TPM session that a reset TPM no longer has, before 'imago measure'
is answered; an error means nothing was committed. If the TPM is reset or
replaced while the agent runs, the agent fails: it extends nothing more,
'imago status' shows why and how to recover, and 'imago measure' exits 1.

On restart the list is replayed and compared with the TPM: a list one entry
ahead (a crash between write and extend) is completed; any other mismatch (the
TPM was reset, the list was cut, state.json edited) or a damaged record before
the last one stops the agent with exit status 1, leaving the files as they
are. To start a new list then, stop the agent and move --state-dir aside. A
list from an earlier boot is moved to <state-dir>/previous/<boot id>/ by
itself.

A file is hashed outside the agent's lock, for at most --hash-timeout; the
socket admits root and the agent's uid, at most --socket-max-conns
connections per uid. With --watch, a gate that stops (its fanotify group
failing) stops the agent with exit status 4, which the service restarts.

--adopt-kernel-list adopts the kernel's TPM-bypass list (a kernel that found
no TPM at boot): whenever a TPM appears, every entry of the kernel's list is
extended into it as the kernel would have (PCR 10, every bank) and the list is
followed as it grows, every --adopt-interval; the agent's own list then goes to
--pcr 11 by default, begins with boot_aggregate_late and records the adoption.
A list that is not a bypass list, or a TPM whose PCR 10 holds something else,
is refused (logged, and shown by 'imago status'); the agent carries on.

Exit status: 0 stopped by a signal, 1 the list does not match the TPM or is
damaged, 2 bad usage or a start-up failure (another agent holds the state
directory or the socket), 3 not supported here (not Linux, the simulator not
built in), 4 the gate stopped (a restart cures it).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd, c.stderr)
			if err != nil {
				return err
			}
			if ns := os.Getenv("NOTIFY_SOCKET"); ns != "" {
				cfg.Notify = func(state string) {
					if err := sdnotify.Notify(ns, state); err != nil {
						cfg.Logger.Warn("sd_notify", "err", err)
					}
				}
			}
			run := func(ctx context.Context) error { return agent.Run(ctx, cfg) }
			if len(f.watch) > 0 {
				gc, err := f.gateConfig(cfg.Logger)
				if err != nil {
					return err
				}
				run = func(ctx context.Context) error { return agent.RunGate(ctx, cfg, gc) }
			}
			return agentErr(run(cmd.Context()))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tpm, "tpm", "auto", "TPM: auto | /dev/tpmrmN | tcp://HOST:PORT | unix:///PATH | sim | none")
	fl.StringVar(&f.init, "init", "staged", "when to initialise: staged (first stage if the TPM is there) | late (always at the late stage)")
	fl.StringVar(&f.hash, "hash", "", "file hash algorithm, kernel name (default sha256; sha1 for --template ima)")
	fl.StringVar(&f.template, "template", ima.TemplateIMANG, "template: ima-ng | ima | ima-sig | ima-buf | ima-ngv2 | ... | a format such as d-ng|n-ng|iuid")
	fl.IntVar(&f.pcr, "pcr", agent.DefaultPCR, "PCR to extend (refused as 10 when the kernel's IMA is active)")
	fl.StringVar(&f.stateDir, "state-dir", agent.DefaultStateDir, "directory of the durable list")
	fl.StringVar(&f.runtimeDir, "runtime-dir", agent.DefaultRuntimeDir, "directory of the securityfs-style exports")
	fl.StringVar(&f.socket, "socket", agent.DefaultSocket, "request socket (mode 0600)")
	fl.DurationVar(&f.tpmWait, "tpm-wait", agent.DefaultTPMWait, "how long to wait for a TPM before TPM-bypass")
	fl.DurationVar(&f.poll, "poll", agent.DefaultPollInterval, "how often to look for the TPM while waiting")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug | info | warn | error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text | json")
	fl.MarkHidden("poll")
	fl.DurationVar(&f.hashTimeout, "hash-timeout", agent.DefaultHashTimeout, "longest time to hash one file; a file not hashed by then is not measured (0: no limit)")
	fl.IntVar(&f.maxConns, "socket-max-conns", agent.DefaultMaxConnsPerUID, "connections one uid may hold open on the socket at once")
	fl.StringArrayVar(&f.watch, "watch", nil, "gate: hold execs and opens on the filesystem of this path until measured (and appraised); repeatable")
	fl.StringVar(&f.policy, "policy", "tcb", "gate: IMA policy, a file or a built-in name (tcb, appraise_tcb, secure_boot, ...)")
	fl.StringVar(&f.keyring, "keyring", "", "gate: directory of x509 certificates (PEM or DER) that appraise rules verify signatures with")
	fl.StringVar(&f.appraise, "appraise", "enforce", "gate: enforce (deny on failure) | log | fix (write the missing hash) | off, like ima_appraise=")
	fl.StringVar(&f.gateFail, "gate-fail", "auto", "gate: answer when the queue is full or --gate-timeout passes: open (allow) | closed (deny) | auto (closed with enforced appraise rules, else open)")
	fl.IntVar(&f.gateWorkers, "gate-workers", 0, "gate: workers deciding events (0: 4)")
	fl.IntVar(&f.gateQueue, "gate-queue", 0, "gate: events waiting for a worker before --gate-fail applies (0: 4096)")
	fl.DurationVar(&f.gateTimeout, "gate-timeout", 0, "gate: longest wait for a decision before --gate-fail applies (0: 5s)")
	f.adopt.register(fl)
	fl.BoolVar(&f.kernelCache, "gate-kernel-cache", true, "gate: where the policy allows, ask the kernel to stop reporting a measured file's execs (and, where no open can be measured, its opens) until it is written (fanotify ignore marks)")
	return cmd
}

// gateConfig builds the gate's configuration from the flags.
func (f *agentFlags) gateConfig(log *slog.Logger) (agent.GateConfig, error) {
	var gc agent.GateConfig
	mode, err := agent.ParseAppraiseMode(f.appraise)
	if err != nil {
		return gc, usagef("--appraise: %v", err)
	}
	pol, warns, err := agent.LoadGatePolicy(f.policy, os.ReadFile)
	if err != nil {
		return gc, usagef("--policy: %v", err)
	}
	for _, w := range warns {
		log.Warn("policy: "+w.String(), "policy", f.policy)
	}
	if f.keyring != "" {
		gc.Keyring, err = keyfile.LoadKeyring([]string{f.keyring}, func(path string, err error) {
			log.Warn("keyring: skipping a file", "path", path, "err", err)
		})
		if err != nil {
			return gc, usagef("--keyring: %v", err)
		}
	} else if pol.Needs().Appraise && mode != agent.AppraiseOff {
		log.Warn("the policy has appraise rules and no --keyring was given: every signature fails to verify")
	}
	switch f.gateFail {
	case "open":
	case "closed":
		gc.FailClosed = true
	case "auto", "":
		gc.FailClosed = mode == agent.AppraiseEnforce && pol.Needs().Appraise
	default:
		return gc, usagef("--gate-fail %q: want open, closed or auto", f.gateFail)
	}
	if f.gateWorkers < 0 || f.gateQueue < 0 || f.gateTimeout < 0 {
		return gc, usagef("--gate-workers, --gate-queue and --gate-timeout must not be negative")
	}
	gc.Mounts, gc.Policy, gc.Appraise = f.watch, pol, mode
	gc.Workers, gc.Queue, gc.Timeout = f.gateWorkers, f.gateQueue, f.gateTimeout
	gc.NoIgnoreMarks = !f.kernelCache
	return gc, nil
}

func (f *agentFlags) config(cmd *cobra.Command, stderr io.Writer) (agent.Config, error) {
	var cfg agent.Config
	if err := tpm.CheckURI(f.tpm); err != nil {
		return cfg, usagef("--tpm: %v", err)
	}
	switch f.init {
	case "staged", "":
	case "late":
		cfg.InitLate = true
	default:
		return cfg, usagef("--init %q: want staged or late", f.init)
	}
	t, err := ima.LookupTemplate(f.template)
	if err != nil {
		return cfg, usagef("--template: %v", err)
	}
	hash := f.hash
	if hash == "" && t.IsLegacy() {
		hash = "sha1"
	}
	if hash != "" {
		if _, err := ima.ParseHashAlg(hash); err != nil {
			return cfg, usagef("--hash: %v", err)
		}
	}
	if f.pcr < 0 || f.pcr > 23 {
		return cfg, usagef("--pcr %d: want 0..23", f.pcr)
	}
	pcrIdx, err := f.adopt.agentPCR(f.pcr, cmd.Flags().Changed("pcr"))
	if err != nil {
		return cfg, err
	}
	if f.tpmWait <= 0 || f.poll <= 0 {
		return cfg, usagef("--tpm-wait and --poll must be positive")
	}
	if f.hashTimeout < 0 || f.maxConns <= 0 {
		return cfg, usagef("--hash-timeout must not be negative and --socket-max-conns must be positive")
	}
	logger, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return cfg, err
	}
	cfg.TPM, cfg.Hash, cfg.Template, cfg.PCR = f.tpm, hash, t, pcrIdx
	if err := f.adopt.apply(&cfg); err != nil {
		return cfg, err
	}
	cfg.StateDir, cfg.RuntimeDir, cfg.Socket = f.stateDir, f.runtimeDir, f.socket
	cfg.TPMWait, cfg.PollInterval, cfg.Logger = f.tpmWait, f.poll, logger
	cfg.HashTimeout, cfg.MaxConnsPerUID = f.hashTimeout, f.maxConns
	if f.hashTimeout == 0 {
		cfg.HashTimeout = -1 // no limit
	}
	return cfg, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// agentErr maps the agent's errors to exit statuses.
func agentErr(err error) error {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, tpm.ErrSimulatorNotBuilt), errors.Is(err, agent.ErrNotSupported), errors.Is(err, gate.ErrNotSupported):
		return &unsupportedError{err}
	case errors.Is(err, agent.ErrGateStopped):
		return &restartError{err}
	case errors.Is(err, agent.ErrListMismatch), errors.Is(err, agent.ErrCorrupt):
		return failed("%v", err)
	case errors.Is(err, agent.ErrKernelPCR), errors.Is(err, agent.ErrLocked),
		errors.Is(err, agent.ErrSocketInUse), errors.Is(err, agent.ErrSocketPath):
		return usagef("%v", err)
	}
	return err
}

// socketFlag registers --socket on a client command.
func socketFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "socket", agent.DefaultSocket, "the agent's socket")
}

// clientErr maps a client call's error to an exit status, by the code the
// agent answered with (never by its text).
func clientErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, agent.ErrNotRunning):
		return inputErr(fmt.Errorf("%w (is 'imago agent' running? --socket names its socket)", err))
	case errors.Is(err, agent.ErrFailed):
		return failed("%v", err)
	case errors.Is(err, agent.ErrRefused), errors.Is(err, agent.ErrBusy), errors.Is(err, agent.ErrTooLong),
		errors.Is(err, agent.ErrBadRequest), errors.Is(err, agent.ErrStopping), errors.Is(err, agent.ErrNotReady):
		return inputErr(err)
	}
	return err
}
