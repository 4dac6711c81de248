package fleet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/fleet"
	"github.com/imago-ima/imago/internal/emuhost"
	"github.com/imago-ima/imago/internal/fleettest"
	"github.com/imago-ima/imago/internal/pgtest"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/internal/testcert"
	"github.com/imago-ima/imago/lease"
	"github.com/imago-ima/imago/store"
	"github.com/imago-ima/imago/verifier"
	"github.com/imago-ima/imago/verifier/client"
)

// BenchmarkRoundPostgres runs attestation rounds (10 new entries each, over
// TLS) against one verifier replica on a PostgreSQL cluster, in one process
// with the emulated attesters, and reports the CPU a round costs: this
// process (attester and verifier) and the PostgreSQL server's processes,
// read from /proc. On an idle machine the rounds per second one can reach
// is cores / (cpu-µs/round of both); this does not depend on what else the
// machine runs, which wall-clock figures do.
func BenchmarkRoundPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	url := pg.CreateDatabase(b, "bench")
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() }) // after the verifier stops
	cert := testcert.New(b)
	ca, _ := softtpm.NewCA("bench")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	rep, err := fleet.New(fleet.Config{Store: st, Leases: lease.NewPostgres(st.DB(), url, lease.Options{Owner: "bench", Logger: log}),
		Interval: time.Hour, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	vurl := fleettest.Serve(b, verifier.Config{Store: st, TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}},
		EKRoots: enroll.NewRoots([]*x509.Certificate{ca.Cert}), Interval: time.Hour, Logger: log, Replica: "bench", Fleet: rep})
	tr, _ := client.TLSTransport(cert.CertPEM, 64, true)
	cl, _ := client.New(vurl, client.Options{Transport: tr})
	policy, _ := emuhost.Policy(ca)
	const nodes = 256
	queue := make(chan *emuhost.Host, nodes)
	for i := range nodes {
		h, _ := emuhost.New(ca, fmt.Sprintf("n%03d", i))
		if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: h.Name, RuntimePolicy: policy}); err != nil {
			b.Fatal(err)
		}
		h.Measure(20)
		a := h.Attester(cl)
		if err := a.Enroll(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Round(ctx); err != nil {
			b.Fatal(err)
		}
		queue <- h
	}
	var fails atomic.Int64
	b.SetParallelism(16)
	cpu0, pg0 := cpuTime(), pgCPU(b, pg)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := <-queue
			h.Measure(10)
			res, err := h.Attester(cl).Round(ctx)
			if err != nil || res.Verdict != attest.VerdictPass {
				fails.Add(1)
			}
			queue <- h
		}
	})
	b.StopTimer()
	self, server := cpuTime()-cpu0, pgCPU(b, pg)-pg0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rounds/s")
	b.ReportMetric(float64(self.Microseconds())/float64(b.N), "cpu-µs/round")
	b.ReportMetric(float64(server.Microseconds())/float64(b.N), "pg-cpu-µs/round")
	b.Logf("pg user %d sys %d ticks total", pgUser, pgSys)
	if fails.Load() > 0 {
		b.Fatalf("%d rounds failed", fails.Load())
	}
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var pgUser, pgSys int64

// pgCPU is the user+system CPU time of the cluster's postmaster and its
// children (backends, WAL writer, checkpointer), from /proc.
func pgCPU(b *testing.B, c *pgtest.Cluster) time.Duration {
	raw, err := os.ReadFile(filepath.Join(c.Dir, "data", "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	master := strings.SplitN(string(raw), "\n", 2)[0]
	ents, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		s, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// fields after the command's closing parenthesis: state ppid ... utime(14) stime(15)
		i := strings.LastIndexByte(string(s), ')')
		f := strings.Fields(string(s[i+1:]))
		if len(f) < 13 || (e.Name() != master && f[1] != master) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
		pgUser += u
		pgSys += st
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
