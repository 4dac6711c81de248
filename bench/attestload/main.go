// Command attestload is bench/attest.sh's load generator: many attesters
// in one process, each an emulated TPM (internal/softtpm: real TPMS_ATTEST
// quotes signed by a software AK, enrolled through the same credential
// exchange as a real TPM, with an EK certificate from a test CA) and an
// IMA list that grows by --entries entries a round, plus optionally one
// real TPM (--swtpm URI) attesting in the same run. It drives the
// verifier's real API over TLS with the real attester code and reports
// verified attestations per second and round latency percentiles.
//
//	attestload ca DIR         # the emulated TPMs' EK CA: DIR/ca.pem (for --ek-roots), DIR/ca.key
//	attestload run --verifier URL --ca C --ek-ca DIR --nodes N --duration D ...
//	attestload check --verifier URL --ca C --acked FILE
//
// run writes every node's acknowledged round count to --acked; check
// (after the verifier was killed and restarted) fails unless every
// acknowledged verdict is in the store.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/internal/emuhost"
	"github.com/imago-ima/imago/internal/imahost"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/verifier/client"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attestload run|check [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "ca":
		err = makeCA(os.Args[2:])
	case "check":
		err = check(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attestload:", err)
		os.Exit(1)
	}
}

type node struct {
	name  string
	a     *attester.Attester
	ima   *imahost.Host
	real  bool
	next  int // next file to measure
	acked uint64
	lat   []time.Duration
}

func (n *node) measure(k int) error {
	for range k {
		if _, err := n.ima.Measure(emuhost.FileName(n.next), emuhost.FileContent(n.next)); err != nil {
			return err
		}
		n.next++
	}
	return nil
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var (
		url      = fs.String("verifier", "", "verifier URL (a fleet's replicas: URLs separated by commas)")
		tolerate = fs.Bool("tolerate-errors", false, "rounds without a verdict (a replica killed mid-round) do not fail the run")
		caFile   = fs.String("ca", "", "the verifier's TLS certificate")
		ekCA     = fs.String("ek-ca", "", "directory 'attestload ca' wrote")
		nodes    = fs.Int("nodes", 1000, "emulated attesters")
		workers  = fs.Int("workers", 64, "rounds in flight")
		entries  = fs.Int("entries", 10, "new list entries per round")
		initial  = fs.Int("initial", 50, "list entries before the first round")
		duration = fs.Duration("duration", 30*time.Second, "how long to run")
		swtpm    = fs.String("swtpm", "", "a real TPM (tcp://HOST:PORT) to attest in the same run")
		acked    = fs.String("acked", "", "file to write acknowledged rounds to")
		jsonOut  = fs.String("json", "", "file to write the report to as JSON")
		vpid     = fs.Int("verifier-pid", 0, "the verifier's process id, to report its CPU time per round")
		http2    = fs.Bool("http2", false, "multiplex the attesters over HTTP/2 connections (default: HTTP/1.1 keep-alive, a connection per round in flight, as separate hosts)")
	)
	fs.Parse(args)
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	tr, err := client.TLSTransport(caPEM, *workers+8, !*http2)
	if err != nil {
		return err
	}
	// Several replicas: every attester goes through them as imago attest
	// does (the next one at once when one does not answer, then rounds
	// with backoff).
	fleetOpts := client.Options{Transport: tr, Timeout: 30 * time.Second,
		Retry: client.Retry{Rounds: 4, Min: 100 * time.Millisecond, Max: 2 * time.Second}}
	cl, err := client.NewFleet(strings.Split(*url, ","), fleetOpts)
	if err != nil {
		return err
	}
	cpem, err := os.ReadFile(filepath.Join(*ekCA, "ca.pem"))
	if err != nil {
		return err
	}
	kpem, err := os.ReadFile(filepath.Join(*ekCA, "ca.key"))
	if err != nil {
		return err
	}
	ca, err := softtpm.ParseCA(cpem, kpem)
	if err != nil {
		return err
	}
	var all []*node
	start := time.Now()
	for i := range *nodes {
		h, err := emuhost.New(ca, fmt.Sprintf("node-%05d", i))
		if err != nil {
			return err
		}
		// A client per attester (sharing the connections): each starts at
		// a replica of its own, as separate hosts would.
		hc, err := client.NewFleet(strings.Split(*url, ","), fleetOpts)
		if err != nil {
			return err
		}
		n := &node{name: h.Name, ima: h.IMA}
		n.a = h.Attester(hc)
		all = append(all, n)
	}
	if *swtpm != "" {
		tp, err := tpm.Open(*swtpm)
		if err != nil {
			return err
		}
		defer tp.Close()
		dev := attester.NewDevice(tp)
		defer dev.Close()
		boot, err := tp.ReadPCRs([]pcr.Bank{pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
		if err != nil {
			return err
		}
		tb, err := tp.Banks()
		if err != nil {
			return err
		}
		h := imahost.New(tb, tp.Extend)
		if err := h.Boot(boot); err != nil {
			return err
		}
		n := &node{name: "swtpm", ima: h, real: true}
		n.a = &attester.Attester{TPM: dev, Client: cl, Node: n.name, List: h}
		all = append(all, n)
	}
	policy, err := emuhost.Policy(ca)
	if err != nil {
		return err
	}
	if *swtpm != "" {
		// The swtpm's boot aggregate differs from the emulated ones'.
		var p map[string]any
		json.Unmarshal(policy, &p)
		var q map[string]any
		json.Unmarshal(all[len(all)-1].ima.Policy(nil), &q)
		d := p["digests"].(map[string]any)
		d["boot_aggregate"] = append(d["boot_aggregate"].([]any), q["digests"].(map[string]any)["boot_aggregate"].([]any)...)
		policy, _ = json.Marshal(p)
	}
	fmt.Fprintf(os.Stderr, "attestload: %d emulated attesters made in %v; adding and enrolling\n", *nodes, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := parallel(ctx, all, *workers, func(n *node) error {
		if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: n.name, RuntimePolicy: policy}); err != nil {
			return fmt.Errorf("add %s: %w", n.name, err)
		}
		if err := n.measure(*initial); err != nil {
			return err
		}
		if err := n.a.Enroll(ctx); err != nil {
			return fmt.Errorf("enroll %s: %w", n.name, err)
		}
		// The first round carries the whole list; it is not timed.
		res, err := n.a.Round(ctx)
		if err != nil {
			return fmt.Errorf("first round of %s: %w", n.name, err)
		}
		if res.Verdict != attest.VerdictPass {
			return fmt.Errorf("first round of %s: %s %+v", n.name, res.Verdict, res.Failures)
		}
		n.acked = res.Round
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "attestload: %d nodes enrolled and attested once in %v; running %v with %d rounds in flight\n",
		len(all), time.Since(start).Round(time.Millisecond), *duration, *workers)

	// The timed run: a worker takes the next idle node, measures, attests.
	var (
		passed, failedN, errs atomic.Int64
		firstErr              atomic.Value
	)
	queue := make(chan *node, len(all))
	for _, n := range all {
		queue <- n
	}
	rctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var wg sync.WaitGroup
	// timeline counts verified attestations in each second of the run.
	timeline := make([]atomic.Int64, int(duration.Seconds())+2)
	var errFirst atomic.Value // the first round without a verdict
	t0 := time.Now()
	selfCPU0, vCPU0 := processCPU(0), processCPU(*vpid)
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var n *node
				select {
				case <-rctx.Done():
					return
				case n = <-queue:
				}
				if err := n.measure(*entries); err != nil {
					firstErr.CompareAndSwap(nil, err)
					errs.Add(1)
					return
				}
				s := time.Now()
				res, err := n.a.Round(ctx)
				d := time.Since(s)
				switch {
				case err != nil:
					errs.Add(1)
					errFirst.CompareAndSwap(nil, fmt.Errorf("%s: %w", n.name, err))
					if !*tolerate {
						firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", n.name, err))
					}
				case res.Verdict == attest.VerdictPass && res.State == attest.StatePass:
					passed.Add(1)
					if sec := int(time.Since(t0) / time.Second); sec < len(timeline) {
						timeline[sec].Add(1)
					}
					n.acked = res.Round
					n.lat = append(n.lat, d)
				default:
					failedN.Add(1)
					n.acked = res.Round
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: verdict %s %+v", n.name, res.Verdict, res.Failures))
				}
				queue <- n
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	selfCPU, vCPU := processCPU(0)-selfCPU0, processCPU(*vpid)-vCPU0
	var lat []time.Duration
	realRounds := 0
	for _, n := range all {
		lat = append(lat, n.lat...)
		if n.real {
			realRounds = len(n.lat)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rep := map[string]any{
		"nodes": len(all), "workers": *workers, "entries_per_round": *entries, "seconds": elapsed.Seconds(),
		"verified": passed.Load(), "failed": failedN.Load(), "errors": errs.Load(),
		"per_second": float64(passed.Load()) / elapsed.Seconds(),
		"p50_ms":     ms(pct(lat, 0.50)), "p99_ms": ms(pct(lat, 0.99)), "max_ms": ms(pct(lat, 1)),
		"swtpm_rounds": realRounds,
	}
	var tl []int64
	for i := range timeline {
		tl = append(tl, timeline[i].Load())
	}
	rep["timeline"] = tl
	if e := errFirst.Load(); e != nil {
		rep["first_error"] = e.(error).Error()
	}
	if n := passed.Load() + failedN.Load(); n > 0 {
		rep["load_cpu_us_per_round"] = float64(selfCPU.Microseconds()) / float64(n)
		if *vpid != 0 {
			rep["verifier_cpu_us_per_round"] = float64(vCPU.Microseconds()) / float64(n)
		}
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(b))
	if *jsonOut != "" {
		os.WriteFile(*jsonOut, b, 0o644)
	}
	if *acked != "" {
		m := map[string]uint64{}
		for _, n := range all {
			m[n.name] = n.acked
		}
		ab, _ := json.Marshal(m)
		if err := os.WriteFile(*acked, ab, 0o644); err != nil {
			return err
		}
	}
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("%d rounds failed, %d errors; first: %v", failedN.Load(), errs.Load(), e)
	}
	if *swtpm != "" && realRounds == 0 {
		return errors.New("the real TPM completed no timed round")
	}
	return nil
}

// makeCA writes a new EK CA for the emulated TPMs.
func makeCA(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: attestload ca DIR")
	}
	ca, err := softtpm.NewCA("imago attestload EK CA")
	if err != nil {
		return err
	}
	c, k, err := ca.PEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(args[0], 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(args[0], "ca.pem"), c, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(args[0], "ca.key"), k, 0o600)
}

// check verifies that every acknowledged round is in the store.
func check(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	url := fs.String("verifier", "", "verifier URL")
	caFile := fs.String("ca", "", "the verifier's TLS certificate")
	acked := fs.String("acked", "", "file run wrote")
	fs.Parse(args)
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	cl, err := client.NewFleet(strings.Split(*url, ","), client.Options{CA: caPEM, Retry: client.Retry{Rounds: 3, Min: time.Second}})
	if err != nil {
		return err
	}
	b, err := os.ReadFile(*acked)
	if err != nil {
		return err
	}
	var want map[string]uint64
	if err := json.Unmarshal(b, &want); err != nil {
		return err
	}
	nodes, err := cl.Nodes(ctx)
	if err != nil {
		return err
	}
	have := map[string]uint64{}
	for _, n := range nodes {
		have[n.Node] = n.Round
	}
	lost := 0
	for name, r := range want {
		if have[name] < r {
			lost++
			if lost <= 5 {
				fmt.Fprintf(os.Stderr, "attestload: %s: round %d acknowledged, store has %d\n", name, r, have[name])
			}
		}
	}
	if lost > 0 {
		return fmt.Errorf("%d of %d nodes lost acknowledged verdicts", lost, len(want))
	}
	fmt.Printf("durability: all %d nodes' acknowledged verdicts are in the store after kill -9\n", len(want))
	return nil
}

func parallel(ctx context.Context, all []*node, workers int, f func(*node) error) error {
	ch := make(chan *node)
	var wg sync.WaitGroup
	var first atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range ch {
				if err := f(n); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for _, n := range all {
		if first.Load() != nil || ctx.Err() != nil {
			break
		}
		ch <- n
	}
	close(ch)
	wg.Wait()
	if e := first.Load(); e != nil {
		return e.(error)
	}
	return ctx.Err()
}

func pct(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// processCPU returns a process's user+system CPU time from
// /proc/PID/stat (0: this process); 0 if it cannot be read.
func processCPU(pid int) time.Duration {
	p := "/proc/self/stat"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces), from
	// field 3 on: utime is field 14, stime field 15, in clock ticks.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}
