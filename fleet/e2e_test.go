package fleet_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/fleet"
	"github.com/imago-ima/imago/internal/fleettest"
	"github.com/imago-ima/imago/store"
	"github.com/imago-ima/imago/verifier/client"
)

// waitAcked waits until every node has a verdict acknowledged after
// since, and returns how long the slowest took.
func waitAcked(t *testing.T, nodes []*fleettest.Node, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	deadline := since.Add(within)
	for {
		var slowest time.Duration
		missing := ""
		for _, n := range nodes {
			a, ok := n.LastAck()
			if !ok || !a.At.After(since) {
				missing = n.Host.Name
				break
			}
			// the first ack after since
			for _, x := range n.AcksCopy() {
				if x.At.After(since) {
					slowest = max(slowest, x.At.Sub(since))
					break
				}
			}
		}
		if missing == "" {
			return slowest
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s got no verdict within %v", missing, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaseOwners reads who holds which lease (unexpired), by the database.
func leaseOwners(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	rows, err := st.DB().Query(`SELECT name, owner FROM leases WHERE owner <> '' AND expires > clock_timestamp()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, o string
		rows.Scan(&n, &o)
		out[n] = o
	}
	return out
}

// TestFleet runs three `imago verifier serve` replicas on one PostgreSQL
// cluster with emulated hosts attesting to all three through fault
// proxies, and checks, from what the store and the attesters say: the
// leases are shared; network faults (cut connections, a replica whose
// answers are held back past the attesters' timeout) cost no verdict; a
// replica killed with SIGKILL mid-run leaves no node unattested for more
// than a lease period and its leases are taken over within one;
// PostgreSQL restarted mid-run: the replicas reconnect and rounds resume;
// and in the stored rounds, no node was judged by two replicas at once,
// every acknowledged verdict is there, none twice.
func TestFleet(t *testing.T) {
	bin := bins.Get(t, "imago", nil)
	e := fleettest.New(t, bin)
	// The lease period bounds how long a killed replica's nodes may go
	// unattested: an attester's request to the dead replica times out (2 s)
	// and its next round goes to another; 6 s leaves room for the cycle
	// over every node on a loaded CI machine (with -race).
	e.LeaseTTL = 6 * time.Second
	reps := []*fleettest.Replica{e.Start("r0", ""), e.Start("r1", ""), e.Start("r2", "")}
	ctx := context.Background()
	opts := client.Options{Timeout: 2 * time.Second, Retry: client.Retry{Rounds: 4, Min: 100 * time.Millisecond, Max: time.Second}}
	cl := e.Client(opts)
	const count = 24
	nodes := e.AddNodes(ctx, cl, "node", count)
	st, err := store.Open(ctx, e.DB, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rctx, stopAttesting := context.WithCancel(ctx)
	wait := fleettest.Attest(rctx, func() *client.Client { return e.Client(opts) }, nodes, 2, 300*time.Millisecond)
	defer func() { stopAttesting(); wait() }()

	t.Run("leases shared", func(t *testing.T) {
		deadline := time.Now().Add(4 * e.LeaseTTL)
		for {
			own := leaseOwners(t, st)
			per := map[string]int{}
			for _, o := range own {
				per[o]++
			}
			if len(own) == len(fleet.Tasks) && per["r0"] == 1 && per["r1"] == 1 && per["r2"] == 1 {
				return
			}
			if time.Now().After(deadline) {
				for _, r := range reps {
					t.Logf("%s:\n%s", r.Name, r.ReadLog())
				}
				t.Fatalf("leases not one per replica: %v", own)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("network faults", func(t *testing.T) {
		reps[1].Proxy.SetDelay(3 * time.Second) // past the attesters' 2 s timeout
		for range 10 {
			reps[0].Proxy.Cut()
			time.Sleep(300 * time.Millisecond)
		}
		reps[2].Proxy.SetDown(true)
		time.Sleep(time.Second)
		reps[2].Proxy.SetDown(false)
		reps[1].Proxy.SetDelay(0)
		if reps[0].Proxy.Cuts()+reps[2].Proxy.Cuts() == 0 {
			t.Fatal("no connection was cut")
		}
		d := waitAcked(t, nodes, time.Now(), 15*time.Second)
		t.Logf("after the faults every node passed again within %v (%d connections cut)", d, reps[0].Proxy.Cuts()+reps[2].Proxy.Cuts())
	})

	t.Run("failover", func(t *testing.T) {
		before := leaseOwners(t, st)
		reps[0].Kill()
		killed := time.Now()
		var took time.Duration
		for {
			own := leaseOwners(t, st)
			n := 0
			for _, o := range own {
				if o == "r0" {
					n = -100
				}
				n++
			}
			if n == len(fleet.Tasks) {
				took = time.Since(killed)
				break
			}
			if time.Since(killed) > e.LeaseTTL {
				t.Fatalf("r0's leases not taken over within a lease period (%v): %v (before: %v)", e.LeaseTTL, own, before)
			}
			time.Sleep(20 * time.Millisecond)
		}
		d := waitAcked(t, nodes, killed, e.LeaseTTL)
		t.Logf("r0 killed: its leases taken over in %v; every node attested again within %v (lease period %v)", took, d, e.LeaseTTL)
	})

	t.Run("postgres restarted", func(t *testing.T) {
		e.PG.Stop()
		time.Sleep(2 * time.Second)
		e.PG.Start()
		back := time.Now()
		d := waitAcked(t, nodes, back, 30*time.Second)
		for _, r := range reps[1:] {
			if !r.Running() {
				t.Fatalf("replica %s exited across the restart:\n%s", r.Name, r.ReadLog())
			}
		}
		// Both live replicas hold leases again.
		deadline := time.Now().Add(4 * e.LeaseTTL)
		for len(leaseOwners(t, st)) != len(fleet.Tasks) {
			if time.Now().After(deadline) {
				t.Fatalf("leases after the restart: %v", leaseOwners(t, st))
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("PostgreSQL back: every node passed again within %v", d)
	})

	stopAttesting()
	wait()

	t.Run("stored rounds", func(t *testing.T) {
		recs, err := st.Rounds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		by := map[string][]store.RoundRecord{}
		perReplica := map[string]int{}
		for _, r := range recs {
			by[r.Node] = append(by[r.Node], r)
			perReplica[r.Replica]++
		}
		for _, n := range nodes {
			rs := by[n.Host.Name]
			// One replica at a time: a round starts (the node taken) only
			// after the one before was judged.
			for i := 1; i < len(rs); i++ {
				if rs[i].Started.Before(rs[i-1].Time) {
					t.Errorf("%s: round %d (%s) started at %v before round %d (%s) was judged at %v",
						n.Host.Name, rs[i].Round, rs[i].Replica, rs[i].Started, rs[i-1].Round, rs[i-1].Replica, rs[i-1].Time)
				}
			}
			// Every acknowledged verdict is stored, once, as acknowledged.
			stored := map[uint64]string{}
			for _, r := range rs {
				if _, dup := stored[r.Round]; dup {
					t.Errorf("%s: round %d stored twice", n.Host.Name, r.Round)
				}
				stored[r.Round] = r.Verdict
			}
			acks := n.AcksCopy()
			for _, a := range acks {
				if v, ok := stored[a.Round]; !ok || v != a.Verdict {
					t.Errorf("%s: acknowledged round %d (%s) stored as %q", n.Host.Name, a.Round, a.Verdict, v)
				}
			}
			node, err := st.GetNode(ctx, n.Host.Name)
			if err != nil {
				t.Fatal(err)
			}
			if last := acks[len(acks)-1]; node.Round < last.Round || node.State != attest.StatePass {
				t.Errorf("%s: stored round %d state %s; last acknowledged %d", n.Host.Name, node.Round, node.State, last.Round)
			}
			if len(n.Errs) > 0 {
				t.Logf("%s: %d rounds without a verdict (the attester retried); first: %v", n.Host.Name, len(n.Errs), n.Errs[0])
			}
		}
		t.Logf("%d stored rounds of %d nodes; by replica: %v", len(recs), len(nodes), perReplica)
		for _, r := range []string{"r0", "r1", "r2"} {
			if perReplica[r] == 0 {
				t.Errorf("replica %s judged no round", r)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		scrape := func(r *fleettest.Replica) map[string]*dto.MetricFamily {
			rsp, err := e.HTTP().Get(r.Direct() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer rsp.Body.Close()
			parser := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := parser.TextToMetricFamilies(rsp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return fams
		}
		fams := scrape(reps[1])
		get := func(name, label, value string) float64 {
			f := fams[name]
			if f == nil {
				t.Fatalf("no metric %s", name)
			}
			for _, m := range f.Metric {
				if label == "" || slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == label && l.GetValue() == value }) {
					switch {
					case m.Counter != nil:
						return m.Counter.GetValue()
					case m.Gauge != nil:
						return m.Gauge.GetValue()
					case m.Histogram != nil:
						return float64(m.Histogram.GetSampleCount())
					}
				}
			}
			t.Fatalf("no %s{%s=%q}", name, label, value)
			return 0
		}
		if v := get("imago_verifier_nodes", "state", "pass"); v != count {
			t.Errorf("imago_verifier_nodes{state=pass} = %v, want %d", v, count)
		}
		recs, _ := st.Rounds(ctx)
		judged := 0
		for _, r := range recs {
			if r.Replica == "r1" && r.Verdict == attest.VerdictPass {
				judged++
			}
		}
		if v := get("imago_verifier_attestations_total", "result", "pass"); int(v) != judged {
			t.Errorf("r1: imago_verifier_attestations_total{result=pass} = %v, the store has %d passing rounds by r1", v, judged)
			t.Log(reps[1].ReadLog())
		}
		if v := get("imago_verifier_verification_seconds", "", ""); int(v) < judged {
			t.Errorf("r1: %v latency samples for %d rounds", v, judged)
		}
		if v := get("imago_verifier_entries_verified_total", "", ""); v < float64(2*judged) {
			t.Errorf("r1: %v entries verified in %d rounds of 2+ entries", v, judged)
		}
		// The two live replicas hold every lease between them.
		deadline := time.Now().Add(4 * e.LeaseTTL)
		for {
			held := 0.0
			for _, r := range reps[1:] {
				fams = scrape(r)
				held += get("imago_verifier_leases_held", "", "")
			}
			if int(held) == len(fleet.Tasks) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("imago_verifier_leases_held of r1 and r2: %v in all, want %d", held, len(fleet.Tasks))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if v := get("imago_verifier_db_errors_total", "op", "request"); v < 1 {
			t.Logf("r1 counted no DB error across the PostgreSQL restart (%v)", v)
		}
	})
	for _, r := range reps[1:] {
		if strings.Contains(r.ReadLog(), `"level":"ERROR","msg":"verifier component died`) {
			t.Errorf("%s: a component died:\n%s", r.Name, r.ReadLog())
		}
	}
}
