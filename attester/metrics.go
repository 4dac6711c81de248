package attester

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/verifier/client"
)

// Metrics are an attester's Prometheus metrics (imago attest
// --metrics-listen): rounds by verdict, rounds without a verdict by
// reason, failed attempts at each verifier replica, and the time of the
// last passing round.
type Metrics struct {
	rounds      *prometheus.CounterVec
	failures    *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

// NewMetrics registers an attester's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imago_attester_rounds_total",
			Help: "Attestation rounds that got a verdict, by verdict (pass, fail, restart).",
		}, []string{"verdict"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imago_attester_failures_total",
			Help: "Rounds that got no verdict, by reason (unreachable, refused, tpm).",
		}, []string{"reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imago_attester_verifier_errors_total",
			Help: "Failed requests to a verifier replica (the attester then tries the next), by replica URL.",
		}, []string{"verifier"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imago_attester_last_success_timestamp_seconds",
			Help: "Unix time of the last round whose verdict was pass (0: none yet).",
		}),
	}
	reg.MustRegister(m.rounds, m.failures, m.attempts, m.lastSuccess)
	for _, v := range []string{attest.VerdictPass, attest.VerdictFail, attest.VerdictRestart} {
		m.rounds.WithLabelValues(v)
	}
	for _, r := range []string{"unreachable", "refused", "tpm"} {
		m.failures.WithLabelValues(r)
	}
	return m
}

// Observe counts a round's outcome (Run's report function).
func (m *Metrics) Observe(res *attest.Result, err error) {
	var ce *client.Error
	switch {
	case err == nil:
		m.rounds.WithLabelValues(res.Verdict).Inc()
		if res.Verdict == attest.VerdictPass {
			m.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
		}
	case errors.Is(err, client.ErrUnreachable):
		m.failures.WithLabelValues("unreachable").Inc()
	case errors.As(err, &ce):
		m.failures.WithLabelValues("refused").Inc()
	default:
		m.failures.WithLabelValues("tpm").Inc()
	}
}

// VerifierError counts a failed request to one replica (client.Options.OnError).
func (m *Metrics) VerifierError(endpoint string, _ error) {
	m.attempts.WithLabelValues(endpoint).Inc()
}

// LastSuccess is the gauge of the last passing round's time.
func (m *Metrics) LastSuccess() prometheus.Gauge { return m.lastSuccess }
