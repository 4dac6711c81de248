package verifier

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/imago-ima/imago/appraise"
	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/ear"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/fleet"
	"github.com/imago-ima/imago/lease"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/store"
)

// Config configures a Server.
type Config struct {
	Store *store.Store
	// Listener is where to serve; Run closes it.
	Listener net.Listener
	// TLS, if set, serves HTTPS (attesters verify the verifier's
	// certificate); nil serves plain HTTP (tests, a TLS-terminating proxy).
	TLS *tls.Config
	// EKRoots are the trust anchors and intermediates EK certificates must
	// chain to.
	EKRoots *enroll.Roots
	// Interval is the expected time between an attester's rounds: a node
	// with no evidence for three intervals is stale.
	Interval time.Duration
	// ChallengeTTL is how long a challenge is honoured (default 60s).
	ChallengeTTL time.Duration
	// EnrollTTL is how long an enrollment challenge is honoured (default
	// 5 minutes).
	EnrollTTL time.Duration
	// HistoryKeep is how many verdicts are kept per node (default 1000).
	HistoryKeep int
	// HistoryMaxAge drops verdicts older than it (0: no age limit).
	HistoryMaxAge time.Duration
	// EAR, if set, signs an attestation result for each round.
	EAR *ear.Issuer
	// AdminToken, if set, is required (Authorization: Bearer) on operator
	// endpoints; if empty they are served to loopback clients only.
	AdminToken string
	// Logger receives structured logs (default: slog.Default()).
	Logger *slog.Logger
	// Build names this build in logs and EARs.
	Build string
	// Replica names this process among the replicas of a fleet (in logs,
	// the stored rounds, the fleet page).
	Replica string
	// Fleet runs this replica's share of the fleet's work (package fleet);
	// nil runs it alone, with local leases (a single verifier process).
	Fleet *fleet.Replica
	// MaxBodyBytes bounds the bytes of large request bodies (evidence, node
	// add) held at once (default 512 MiB).
	MaxBodyBytes int64
}

// Server is the verifier service.
type Server struct {
	cfg Config
	st  *store.Store
	log *slog.Logger

	pmu      sync.RWMutex
	policies map[string]*appraise.Policy

	kmu    sync.Mutex
	akKeys map[string]crypto.PublicKey

	fleet   *fleet.Replica
	metrics *metrics
	events  *events

	now func() time.Time

	bodies *semaphore.Weighted
}

// New checks the configuration and makes a server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Listener == nil {
		return nil, errors.New("verifier: a store and a listener are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = 60 * time.Second
	}
	if cfg.EnrollTTL <= 0 {
		cfg.EnrollTTL = 5 * time.Minute
	}
	if cfg.HistoryKeep <= 0 {
		cfg.HistoryKeep = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Replica == "" {
		cfg.Replica = "local"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 512 << 20
	}
	// One request of each kind must fit.
	cfg.MaxBodyBytes = max(cfg.MaxBodyBytes, attest.MaxEvidenceSize, attest.MaxNodeAddSize)
	s := &Server{cfg: cfg, st: cfg.Store, log: cfg.Logger, policies: make(map[string]*appraise.Policy),
		akKeys: make(map[string]crypto.PublicKey), now: time.Now, bodies: semaphore.NewWeighted(cfg.MaxBodyBytes)}
	s.metrics = newMetrics(s)
	s.fleet = cfg.Fleet
	if s.fleet != nil {
		s.fleet.ReportDBErrors(s.metrics.dbError)
	} else {
		f, err := fleet.New(fleet.Config{Store: cfg.Store, Leases: lease.NewLocal(lease.Options{Owner: cfg.Replica, Build: cfg.Build,
			Addr: cfg.Listener.Addr().String()}), Interval: cfg.Interval, HistoryKeep: cfg.HistoryKeep, HistoryMaxAge: cfg.HistoryMaxAge,
			Logger: cfg.Logger, OnDBError: s.metrics.dbError})
		if err != nil {
			return nil, err
		}
		s.fleet = f
	}
	s.events = newEvents(s)
	return s, nil
}

// HTTP server limits.
const (
	readHeaderTimeout = 10 * time.Second
	// readTimeout allows a first round's 64 MiB of evidence on a slow
	// link.
	readTimeout  = 2 * time.Minute
	writeTimeout = 2 * time.Minute
	idleTimeout  = 2 * time.Minute
	maxHeader    = 64 << 10
	// shutdownTimeout bounds waiting for requests in flight at shutdown.
	shutdownTimeout = 10 * time.Second
)

// Run serves until ctx ends (then it returns nil) or a component fails
// (then it returns the error). Either way every connection and goroutine
// has ended when it returns.
func (s *Server) Run(ctx context.Context) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeader,
		TLSConfig:         s.cfg.TLS,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		var err error
		if s.cfg.TLS != nil {
			err = hs.ServeTLS(s.cfg.Listener, "", "")
		} else {
			err = hs.Serve(s.cfg.Listener)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("verifier: serve: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.fleet.Run(ctx); err != nil {
			errc <- err
		}
	}()
	s.log.Info("verifier serving", "addr", s.cfg.Listener.Addr().String(), "tls", s.cfg.TLS != nil,
		"store", s.st.Dialect(), "replica", s.fleet.Name(), "interval", s.cfg.Interval.String(), "ek_roots", s.cfg.EKRoots.Len(), "build", s.cfg.Build)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.log.Error("verifier component died; stopping", "err", err)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		hs.Close()
	}
	wg.Wait()
	s.events.stop()
	s.log.Info("verifier stopped")
	return err
}

// policy returns the compiled policy with the given id.
func (s *Server) policy(ctx context.Context, id string) (*appraise.Policy, error) {
	s.pmu.RLock()
	p := s.policies[id]
	s.pmu.RUnlock()
	if p != nil {
		return p, nil
	}
	rec, err := s.st.GetPolicy(ctx, id)
	if err != nil {
		return nil, err
	}
	var po appraise.PolicyOptions
	if err := json.Unmarshal(rec.Options, &po); err != nil {
		return nil, fmt.Errorf("verifier: stored policy %s: options: %w", id, err)
	}
	p, err = appraise.CompilePolicy(rec.Body, rec.Keyrings, po)
	if err != nil {
		return nil, fmt.Errorf("verifier: stored policy %s: %w", id, err)
	}
	s.pmu.Lock()
	s.policies[id] = p
	s.pmu.Unlock()
	return p, nil
}

// maxAKKeys bounds the AK key cache (a fleet's worth of nodes).
const maxAKKeys = 1 << 18

// akKey returns the public key of a stored AK, decoding each AK once.
func (s *Server) akKey(akPublic []byte) (crypto.PublicKey, error) {
	s.kmu.Lock()
	k, ok := s.akKeys[string(akPublic)]
	s.kmu.Unlock()
	if ok {
		return k, nil
	}
	p, err := quote.ParsePublic(akPublic)
	if err != nil {
		return nil, fmt.Errorf("verifier: stored AK: %w", err)
	}
	if k, err = quote.PublicKey(p); err != nil {
		return nil, fmt.Errorf("verifier: stored AK: %w", err)
	}
	s.kmu.Lock()
	if len(s.akKeys) >= maxAKKeys {
		clear(s.akKeys)
	}
	s.akKeys[string(akPublic)] = k
	s.kmu.Unlock()
	return k, nil
}
