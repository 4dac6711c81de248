package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/verifier/client"
)

type attestFlags struct {
	sf                           serverFlags
	node, tpmURI, list, eventlog string
	once, offline, asJSON        bool
	interval                     time.Duration
	nonce, output                string
	logLevel, logFormat          string
	metricsListen                string
	timeout                      time.Duration
}

func newAttestCommand(c *cli) *cobra.Command {
	var f attestFlags
	cmd := &cobra.Command{
		Use:   "attest --verifier URL [--ca C] --node NODE [--tpm URI] [--list PATH] [--eventlog PATH] (--once | --interval 10s)",
		Short: "Attest this host to a verifier (or write offline evidence)",
		Long: `Attest this host: enrol the TPM's attestation key with the verifier (the EK,
its certificate from TPM NV and a credential activation prove the AK is in
this TPM), then answer the verifier's challenges with a TPM2_Quote over every
allocated bank, the measurement list from the entry the verifier asks for,
and, on the first round after a boot, the firmware event log.

--list: the binary list (default the kernel's
/sys/kernel/security/ima/binary_runtime_measurements); an imago agent's
--runtime-dir attests imago's own list and PCR. --eventlog: default
securityfs binary_bios_measurements where it exists; without one the boot
aggregate is judged by the runtime policy alone.

--once runs one round and exits 0 when it passed, 1 when it failed, 2 when
no verdict could be had (enrollment refused, verifier unreachable).
--interval runs until SIGINT/SIGTERM, retrying errors with backoff.

A fleet of verifier replicas: give each (--verifier URL --verifier URL2, or
commas). A request that gets no answer (or 502/503/504) goes to the next
replica at once, and round after round with backoff once all have failed;
the attester stays with the replica that answers. --request-timeout bounds
one request to one replica. --metrics-listen ADDR serves the attester's
Prometheus metrics (rounds, failures, last success) at http://ADDR/metrics.

--offline --nonce HEX -o EVIDENCE writes self-contained evidence (quote with
that nonce, whole list, event log, AK) for 'imago verifier check'; it needs
no network.

--tpm: auto | /dev/tpmrmN | tcp://HOST:PORT | unix:///PATH | sim.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAttest(cmd.Context(), c, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.sf.servers, "verifier", nil, "the verifier's URL (https://HOST:8881); a fleet's replicas: repeat or separate with commas")
	fl.DurationVar(&f.timeout, "request-timeout", 2*time.Minute, "bound on one request to one verifier replica")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics")
	fl.StringVar(&f.sf.ca, "ca", "", "PEM certificate to trust for the verifier's TLS")
	fl.StringVar(&f.node, "node", "", "this host's node name at the verifier")
	fl.StringVar(&f.tpmURI, "tpm", "auto", "the TPM")
	fl.StringVar(&f.list, "list", attester.KernelList, "measurement list (file, or an imago agent's runtime dir)")
	fl.StringVar(&f.eventlog, "eventlog", attester.KernelEventLog, "firmware event log")
	fl.BoolVar(&f.once, "once", false, "one round; exit 0 pass, 1 fail, 2 no verdict")
	fl.DurationVar(&f.interval, "interval", 0, "attest every interval until stopped")
	fl.BoolVar(&f.offline, "offline", false, "write offline evidence instead (with --nonce, -o)")
	fl.StringVar(&f.nonce, "nonce", "", "offline: the nonce to quote (hex)")
	fl.StringVarP(&f.output, "output", "o", "", "offline: the evidence file ('-' for stdout)")
	fl.BoolVar(&f.asJSON, "json", false, "print the round's result as JSON")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug | info | warn | error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text | json")
	return cmd
}

func runAttest(ctx context.Context, c *cli, f *attestFlags) error {
	modes := 0
	for _, m := range []bool{f.once, f.interval > 0, f.offline} {
		if m {
			modes++
		}
	}
	if modes != 1 {
		return usagef("give one of --once, --interval D or --offline")
	}
	if err := tpm.CheckURI(f.tpmURI); err != nil {
		return usagef("--tpm: %v", err)
	}
	var nonce []byte
	if f.offline {
		var err error
		if nonce, err = hex.DecodeString(f.nonce); err != nil || len(nonce) == 0 || len(nonce) > 64 {
			return usagef("--nonce: want 1 to 64 bytes of hex")
		}
		if f.output == "" {
			return usagef("--offline needs -o EVIDENCE")
		}
	} else if f.node == "" {
		return usagef("--node is required")
	}
	logger, err := newLogger(c.stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	list, err := attester.OpenList(f.list)
	if err != nil {
		return inputErr(err)
	}
	tp, err := tpm.Open(f.tpmURI)
	if err != nil {
		if errors.Is(err, tpm.ErrSimulatorNotBuilt) {
			return &unsupportedError{err}
		}
		return inputErr(err)
	}
	defer tp.Close()
	dev := attester.NewDevice(tp)
	defer dev.Close()
	a := &attester.Attester{TPM: dev, Node: f.node, List: list, EventLog: attester.EventLogFile(f.eventlog), Logger: logger}
	if f.offline {
		return writeOffline(c, a, nonce, f.output)
	}
	var report func(*attest.Result, error)
	if f.metricsListen != "" {
		reg := prometheus.NewRegistry()
		m := attester.NewMetrics(reg)
		report, f.sf.onError = m.Observe, m.VerifierError
		stop, err := serveMetrics(ctx, f.metricsListen, reg, logger)
		if err != nil {
			return inputErr(fmt.Errorf("--metrics-listen: %w", err))
		}
		defer stop()
	}
	f.sf.timeout = f.timeout
	f.sf.retry = client.Retry{Rounds: 3, Min: 500 * time.Millisecond, Max: 5 * time.Second}
	if f.interval > 0 {
		f.sf.retry.Rounds = 2 // Run retries rounds with its own backoff
	}
	cl, err := f.sf.client(false)
	if err != nil {
		return err
	}
	a.Client = cl
	if f.interval > 0 {
		err := a.Run(ctx, f.interval, report)
		if err != nil {
			return failed("%v", err)
		}
		return nil
	}
	if err := a.Enroll(ctx); err != nil {
		return verifierErr(err)
	}
	res, err := a.Round(ctx)
	if report != nil {
		report(res, err)
	}
	if err != nil {
		return verifierErr(err)
	}
	if err := printResult(c.stdout, res, f.asJSON); err != nil {
		return err
	}
	if res.Verdict != attest.VerdictPass {
		return silent(failed("node %s: attestation %s", f.node, res.Verdict))
	}
	return nil
}

// serveMetrics serves reg at http://addr/metrics until ctx ends or stop
// is called.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, logger *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 2, Timeout: 5 * time.Second}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	logger.Info("metrics served", "url", "http://"+l.Addr().String()+"/metrics")
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			hs.Shutdown(sctx)
			<-done
		})
	}
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-done:
		}
	}()
	return stop, nil
}

func writeOffline(c *cli, a *attester.Attester, nonce []byte, out string) error {
	ev, err := a.Offline(nonce)
	if err != nil {
		return inputErr(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = c.stdout.Write(append(b, '\n'))
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return inputErr(err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return inputErr(err)
	}
	fmt.Fprintf(c.stderr, "imago: evidence for nonce %x written to %s (%d list bytes)\n", nonce, out, len(ev.List))
	return nil
}
