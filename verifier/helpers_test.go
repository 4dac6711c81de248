package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imago-ima/imago/ear"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/pgtest"
	"github.com/imago-ima/imago/internal/testcert"
	"github.com/imago-ima/imago/store"
)

// testCert makes a self-signed TLS certificate for 127.0.0.1 and returns
// it with its PEM.
func testCert(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	c := testcert.New(t)
	return c.TLS, c.CertPEM
}

// storeURLs gives a fresh database per backend.
func backends(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "sqlite://"+filepath.Join(t.TempDir(), "v.db")) })
	t.Run("postgres", func(t *testing.T) {
		c := pgtest.Start(t)
		f(t, c.CreateDatabase(t, "verifier"))
	})
}

// running is a verifier serving on 127.0.0.1 with TLS.
type running struct {
	URL    string
	CA     []byte
	st     *store.Store
	srv    *Server
	cancel context.CancelFunc
	done   chan error
}

// startVerifier starts a verifier on url's store; stop it with stop (also
// at the end of the test).
func startVerifier(t *testing.T, url string, roots *enroll.Roots, mod func(*Config)) *running {
	t.Helper()
	st, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert, caPEM := testCert(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Listener: l, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, EKRoots: roots,
		Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{URL: "https://" + l.Addr().String(), CA: caPEM, st: st, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.st.Close()
	r.cancel = nil
}

func testEARKey(t testing.TB) *ear.Issuer {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := ear.NewIssuer(key, "test")
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
