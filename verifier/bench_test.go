package verifier

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/imahost"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/verifier/client"
)

// BenchmarkRound: attestation rounds of emulated attesters (10 new entries
// each) against the verifier over TLS on loopback, SQLite store, in
// parallel; one op is one verified, durable round.
func BenchmarkRound(b *testing.B) {
	benchOnce.Do(func() { benchSetup(b) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	queue := benchQueue
	ctx := context.Background()
	var fails atomic.Int64
	b.SetParallelism(16)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := <-queue
			for range 10 {
				n.ima.Measure(fmt.Sprintf("/f%d", n.k%100), []byte(fmt.Sprint(n.k%100)))
				n.k++
			}
			res, err := n.a.Round(ctx)
			if err != nil || res.Verdict != attest.VerdictPass {
				fails.Add(1)
			}
			queue <- n
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rounds/s")
	// CPU per round, attester and verifier together: on an idle machine
	// the rounds/s this process can reach is cores / (CPU per round).
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/round")
	if fails.Load() > 0 {
		b.Fatalf("%d rounds failed", fails.Load())
	}
}

type benchNode struct {
	a   *attester.Attester
	ima *imahost.Host
	k   int
}

var (
	benchOnce  sync.Once
	benchErr   error
	benchQueue chan *benchNode
)

// benchSetup starts one verifier for every BenchmarkRound run (it stays up
// until the process exits) and enrols 256 emulated attesters.
func benchSetup(b *testing.B) {
	dir, err := os.MkdirTemp("", "imago-bench")
	if err != nil {
		benchErr = err
		return
	}
	ca, _ := softtpm.NewCA("bench")
	v := startVerifier(&testing.T{}, "sqlite://"+filepath.Join(dir, "v.db"), enroll.NewRoots([]*x509.Certificate{ca.Cert}), nil)
	tr, _ := client.TLSTransport(v.CA, 64)
	cl, _ := client.New(v.URL, client.Options{Transport: tr})
	nodes := 256
	if n, err := strconv.Atoi(os.Getenv("IMAGO_BENCH_NODES")); err == nil {
		nodes = n
	}
	var all []*benchNode
	ctx := context.Background()
	for i := range nodes {
		tp, _ := softtpm.New(ca, "n")
		h, _ := imahost.NewBooted(tp)
		n := &benchNode{a: &attester.Attester{TPM: tp, Client: cl, Node: fmt.Sprintf("n%d", i), List: h}, ima: h}
		all = append(all, n)
	}
	extra := map[string]string{}
	for i := range 100 {
		extra[fmt.Sprintf("/f%d", i)] = sha256hex(fmt.Sprint(i))
	}
	policy := all[0].ima.Policy(extra)
	for _, n := range all {
		if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: n.a.Node, RuntimePolicy: policy}); err != nil {
			benchErr = err
			return
		}
		if err := n.a.Enroll(ctx); err != nil {
			benchErr = err
			return
		}
		if _, err := n.a.Round(ctx); err != nil {
			benchErr = err
			return
		}
	}
	benchQueue = make(chan *benchNode, nodes)
	for _, n := range all {
		benchQueue <- n
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
