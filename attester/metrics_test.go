package attester_test

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/emuhost"
	"github.com/imago-ima/imago/internal/fleettest"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/store"
	"github.com/imago-ima/imago/verifier"
	"github.com/imago-ima/imago/verifier/client"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestMetrics runs an attester (Run, as imago attest --interval does)
// against a real verifier, with a replica that does not answer listed
// beside it, through passing rounds and a failing one, then a round with
// no replica answering, and reads its metrics as Prometheus would.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+t.TempDir()+"/v.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, _ := softtpm.NewCA("metrics test")
	url := fleettest.Serve(t, verifier.Config{Store: st, EKRoots: enroll.NewRoots([]*x509.Certificate{ca.Cert}), Interval: time.Hour, Logger: quiet})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String()
	l.Close()
	reg := prometheus.NewRegistry()
	m := attester.NewMetrics(reg)
	cl, err := client.NewFleet([]string{dead, url}, client.Options{OnError: m.VerifierError, Retry: client.Retry{Rounds: 2, Min: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := emuhost.Policy(ca)
	h, _ := emuhost.New(ca, "m1")
	if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: "m1", RuntimePolicy: policy}); err != nil {
		t.Fatal(err)
	}
	h.Measure(3)
	a := h.Attester(cl)
	a.Logger = quiet
	rctx, stop := context.WithCancel(ctx)
	rounds := 0
	start := time.Now()
	a.Run(rctx, 10*time.Millisecond, func(res *attest.Result, err error) {
		m.Observe(res, err)
		rounds++
		switch rounds {
		case 3:
			h.IMA.Measure("/opt/not-in-policy", []byte("x"))
		case 4:
			stop()
		}
	})
	// A round with no replica answering.
	down, _ := client.New(dead, client.Options{OnError: m.VerifierError})
	_, err = (&attester.Attester{TPM: h.TPM, Client: down, Node: "m1", List: h.IMA}).Round(ctx)
	m.Observe(nil, err)

	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	want := `
# HELP imago_attester_rounds_total Attestation rounds that got a verdict, by verdict (pass, fail, restart).
# TYPE imago_attester_rounds_total counter
imago_attester_rounds_total{verdict="fail"} 1
imago_attester_rounds_total{verdict="pass"} 3
imago_attester_rounds_total{verdict="restart"} 0
# HELP imago_attester_failures_total Rounds that got no verdict, by reason (unreachable, refused, tpm).
# TYPE imago_attester_failures_total counter
imago_attester_failures_total{reason="refused"} 0
imago_attester_failures_total{reason="tpm"} 0
imago_attester_failures_total{reason="unreachable"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "imago_attester_rounds_total", "imago_attester_failures_total"); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "imago_attester_verifier_errors_total"); n != 1 {
		t.Fatalf("verifier errors by replica: %d series, want 1 (the dead replica)", n)
	}
	last := testutil.ToFloat64(m.LastSuccess())
	if last < float64(start.Unix()) || last > float64(time.Now().Unix()+1) {
		t.Fatalf("last success %v, started %v", last, start.Unix())
	}
}
