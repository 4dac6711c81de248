package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ear"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/fleet"
	"github.com/imago-ima/imago/lease"
	"github.com/imago-ima/imago/store"
	"github.com/imago-ima/imago/verifier"
)

func newVerifierCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verifier",
		Short: "Run the remote-attestation verifier, manage its nodes, check offline evidence",
	}
	cmd.AddCommand(newVerifierServeCommand(c), newVerifierNodeCommand(c), newVerifierCheckCommand(c))
	return cmd
}

type serveFlags struct {
	listen, db, tlsCert, tlsKey, ekRoots, earKey, adminTokenFile string
	interval, challengeTTL, historyAge, leaseTTL                 time.Duration
	replica                                                      string
	history                                                      int
	plainHTTP                                                    bool
	logLevel, logFormat                                          string
}

func newVerifierServeCommand(c *cli) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:8881] [--db URL] --tls-cert C --tls-key K [--ek-roots DIR] [--interval 10s]",
		Short: "Run the verifier service",
		Long: `Run the verifier service: REST/JSON over TLS (verifier/openapi.yaml, also
served at /openapi.yaml). Attesters ('imago attest') enrol their TPM's
attestation key and push evidence; operators add nodes with runtime policies
('imago verifier node add'). Every verdict is durable before it is answered.

--db: sqlite:///PATH (default sqlite:///var/lib/imago/verifier.db; pure Go,
WAL, one writer) or postgres://USER@HOST/DB (PostgreSQL, pgx). The schema is
created and migrated at start.
--ek-roots DIR: PEM certificates (roots and intermediates) EK certificates
must chain to; without it only nodes added with --allow-ek-without-cert can
enrol.
--interval: the attesters' expected interval; a node silent for three
intervals is stale.
--ear-key K: a PEM ECDSA private key; each verdict then carries a signed EAR
(draft-ietf-rats-ear) token, verifiable with GET /v1/ear/keys.
--admin-token-file F: operator endpoints (node add/list/show/remove, check)
need 'Authorization: Bearer <token>'; without it they are served to
loopback clients only.
--plain-http serves without TLS (behind a TLS-terminating proxy only).

A fleet: run any number of replicas on one PostgreSQL store. Any replica
judges any node's round (rounds of one node are serialised across replicas),
challenges are honoured by every replica, and the work that must happen once
(marking nodes stale, expiring enrollment challenges, pruning the history) is
shared out with leases (--lease-ttl) that a dead replica's peers take over.
--replica names this process (default HOST:PORT; unique among live
replicas). Attesters take every replica's URL (imago attest --verifier URL
--verifier URL2 ...). GET /metrics serves Prometheus metrics, GET / the
fleet page.

Logs are structured (slog) on stderr. SIGINT/SIGTERM stop it cleanly; a
component that dies stops it with status 1 (the unit restarts it).

Exit status: 0 stopped by a signal, 1 a component died, 2 bad usage.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerifierServe(cmd.Context(), c, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8881", "address to serve on")
	fl.StringVar(&f.db, "db", "sqlite:///var/lib/imago/verifier.db", "store: sqlite:///PATH or postgres://...")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) for TLS")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key for TLS")
	fl.BoolVar(&f.plainHTTP, "plain-http", false, "serve without TLS (behind a TLS proxy)")
	fl.StringVar(&f.ekRoots, "ek-roots", "", "directory of PEM certificates EK certificates must chain to")
	fl.DurationVar(&f.interval, "interval", 10*time.Second, "attesters' expected interval (stale after three)")
	fl.DurationVar(&f.challengeTTL, "challenge-ttl", 60*time.Second, "how long a challenge is honoured")
	fl.IntVar(&f.history, "history", 1000, "verdicts kept per node")
	fl.DurationVar(&f.historyAge, "history-max-age", 0, "drop verdicts older than this (0: keep)")
	fl.StringVar(&f.earKey, "ear-key", "", "PEM ECDSA private key to sign EAR tokens with")
	fl.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the operator bearer token")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug | info | warn | error")
	fl.StringVar(&f.logFormat, "log-format", "json", "json | text")
	fl.StringVar(&f.replica, "replica", "", "this replica's name in the fleet (default HOST:PORT)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 10*time.Second, "lease period of the fleet's shared work")
	return cmd
}

func runVerifierServe(ctx context.Context, c *cli, f *serveFlags) error {
	logger, err := newLogger(c.stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if f.interval <= 0 || f.challengeTTL <= 0 || f.history <= 0 || f.leaseTTL < 300*time.Millisecond {
		return usagef("--interval, --challenge-ttl and --history must be positive, --lease-ttl at least 300ms")
	}
	var tlsConf *tls.Config
	switch {
	case f.plainHTTP && (f.tlsCert != "" || f.tlsKey != ""):
		return usagef("--plain-http and --tls-cert/--tls-key exclude each other")
	case f.plainHTTP:
	case f.tlsCert == "" || f.tlsKey == "":
		return usagef("--tls-cert and --tls-key are required (or --plain-http behind a TLS proxy)")
	default:
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return inputErr(fmt.Errorf("--tls-cert/--tls-key: %w", err))
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	var roots *enroll.Roots
	if f.ekRoots != "" {
		certs, err := readCertDir(f.ekRoots)
		if err != nil {
			return inputErr(fmt.Errorf("--ek-roots: %w", err))
		}
		roots = enroll.NewRoots(certs)
		if roots.Len() == 0 {
			return inputErr(fmt.Errorf("--ek-roots %s: no self-signed root certificate among %d", f.ekRoots, len(certs)))
		}
	}
	var issuer *ear.Issuer
	if f.earKey != "" {
		key, err := readECKey(f.earKey)
		if err != nil {
			return inputErr(fmt.Errorf("--ear-key: %w", err))
		}
		if issuer, err = ear.NewIssuer(key, buildVersion()); err != nil {
			return inputErr(err)
		}
	}
	var token string
	if f.adminTokenFile != "" {
		b, err := os.ReadFile(f.adminTokenFile)
		if err != nil {
			return inputErr(fmt.Errorf("--admin-token-file: %w", err))
		}
		if token = strings.TrimSpace(string(b)); len(token) < 16 {
			return inputErr(fmt.Errorf("--admin-token-file: a token of at least 16 characters"))
		}
	}
	st, err := store.Open(ctx, f.db, store.Options{})
	if errors.Is(err, store.ErrBadURL) {
		return usagef("--db: %v", err)
	}
	if errors.Is(err, store.ErrSchemaNewer) {
		// Not transient: a newer imago migrated the store past this one.
		return inputErr(err)
	}
	if err != nil {
		// Maybe the database is not up yet: status 1, so the service
		// manager tries again.
		return failed("%v", err)
	}
	defer st.Close()
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return inputErr(fmt.Errorf("--listen: %w", err))
	}
	rep, err := newReplica(st, f, l.Addr().String(), logger)
	if err != nil {
		l.Close()
		return err
	}
	srv, err := verifier.New(verifier.Config{
		Store: st, Listener: l, TLS: tlsConf, EKRoots: roots, Interval: f.interval, ChallengeTTL: f.challengeTTL,
		HistoryKeep: f.history, HistoryMaxAge: f.historyAge, EAR: issuer, AdminToken: token, Logger: logger, Build: buildVersion(),
		Replica: rep.Name(), Fleet: rep,
	})
	if err != nil {
		l.Close()
		return err
	}
	if err := srv.Run(ctx); err != nil {
		return failed("%v", err)
	}
	return nil
}

// newReplica makes this process's share of the fleet: leases in the
// PostgreSQL store, or local ones on SQLite (one process).
func newReplica(st *store.Store, f *serveFlags, addr string, logger *slog.Logger) (*fleet.Replica, error) {
	name := f.replica
	if name == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(addr)
		name = host + ":" + port
	}
	o := lease.Options{Owner: name, TTL: f.leaseTTL, Build: buildVersion(), Addr: addr, Logger: logger}
	var m lease.Manager = lease.NewLocal(o)
	if st.Dialect() == "postgres" {
		m = lease.NewPostgres(st.DB(), f.db, o)
	}
	return fleet.New(fleet.Config{Store: st, Leases: m, Interval: f.interval, HistoryKeep: f.history, HistoryMaxAge: f.historyAge, Logger: logger})
}

// readCertDir reads every PEM certificate in the files of dir.
func readCertDir(dir string) ([]*x509.Certificate, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for blk := range pemBlocks(b) {
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.Name(), err)
			}
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate in %s", dir)
	}
	return out, nil
}

// readECKey reads a PEM ECDSA private key (SEC 1 or PKCS #8).
func readECKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for blk := range pemBlocks(b) {
		switch blk.Type {
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, err
			}
			if ek, ok := k.(*ecdsa.PrivateKey); ok {
				return ek, nil
			}
			return nil, fmt.Errorf("a %T key, want ECDSA", k)
		}
	}
	return nil, errors.New("no PEM private key")
}

// pemBlocks iterates over the PEM blocks in b.
func pemBlocks(b []byte) iter.Seq[*pem.Block] {
	return func(yield func(*pem.Block) bool) {
		for {
			var blk *pem.Block
			if blk, b = pem.Decode(b); blk == nil || !yield(blk) {
				return
			}
		}
	}
}

// buildVersion names this build: the module version, or the VCS revision,
// or "devel".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "devel"
}
