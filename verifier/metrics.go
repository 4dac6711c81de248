package verifier

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imago-ima/imago/appraise"
	"github.com/imago-ima/imago/attest"
)

// metrics are the verifier's Prometheus metrics, served at /metrics. Each
// server has its own registry (no global state).
type metrics struct {
	reg          *prometheus.Registry
	attestations *prometheus.CounterVec
	latency      prometheus.Histogram
	entries      prometheus.Counter
	refusals     *prometheus.CounterVec
	dbErrors     *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		attestations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imago_verifier_attestations_total",
			Help: "Attestation rounds judged by this replica, by verdict (pass, fail, restart).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "imago_verifier_verification_seconds",
			Help:    "Time from receiving a round's evidence to its verdict being durable.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imago_verifier_entries_verified_total",
			Help: "Measurement list entries judged by the runtime policy in rounds this replica judged.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imago_verifier_requests_refused_total",
			Help: "Requests answered with an error, by failure id (challenge.used, round.busy, request.malformed, ...).",
		}, []string{"id"}),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imago_verifier_db_errors_total",
			Help: "Failed store operations, by operation (request, lease renew/claim, the fleet's tasks).",
		}, []string{"op"}),
	}
	m.reg.MustRegister(m.attestations, m.latency, m.entries, m.refusals, m.dbErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, v := range []string{attest.VerdictPass, attest.VerdictFail, attest.VerdictRestart} {
		m.attestations.WithLabelValues(v)
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imago_verifier_leases_held",
		Help: "Fleet leases this replica holds.",
	}, func() float64 {
		if s.fleet == nil {
			return 0
		}
		return float64(len(s.fleet.Held()))
	}))
	m.reg.MustRegister(&stateCollector{s: s, desc: prometheus.NewDesc("imago_verifier_nodes",
		"Nodes by state (enrolling, pass, fail, stale), as the store has them.", []string{"state"}, nil)})
	return m
}

// round counts a judged round whose challenge asked for entries from
// offset.
func (m *metrics) round(res *attest.Result, out *appraise.Outcome, offset uint64, d time.Duration) {
	m.attestations.WithLabelValues(res.Verdict).Inc()
	m.latency.Observe(d.Seconds())
	if out.Authentic && res.Entries > offset {
		m.entries.Add(float64(res.Entries - offset))
	}
}

// refused counts an error answer.
func (m *metrics) refused(_ *http.Request, id string) {
	if id == "" || strings.ContainsAny(id, " \n") || len(id) > 64 {
		id = "other"
	}
	m.refusals.WithLabelValues(id).Inc()
}

func (m *metrics) dbError(op string) { m.dbErrors.WithLabelValues(op).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// stateCollector reads the nodes by state from the store at a scrape, at
// most once a second.
type stateCollector struct {
	s    *Server
	desc *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := c.s.st.CountByState(ctx)
		cancel()
		if err != nil {
			c.s.metrics.dbError("count nodes")
			c.s.log.Error("metrics: counting nodes", "err", err)
		} else {
			c.counts, c.at = counts, time.Now()
		}
	}
	for _, st := range []string{attest.StateEnrolling, attest.StatePass, attest.StateFail, attest.StateStale} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.counts[st]), st)
	}
}
