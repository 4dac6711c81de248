// Package fleettest runs a verifier fleet for tests, with real components:
// a PostgreSQL cluster (internal/pgtest), `imago verifier serve` processes
// built from this module (replicas), a fault proxy in front of each
// (internal/faultproxy), and emulated hosts (internal/emuhost) attesting
// through the real attester code to every replica's URL.
package fleettest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/internal/emuhost"
	"github.com/imago-ima/imago/internal/faultproxy"
	"github.com/imago-ima/imago/internal/pgtest"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/internal/testcert"
	"github.com/imago-ima/imago/internal/testproc"
	"github.com/imago-ima/imago/verifier"
	"github.com/imago-ima/imago/verifier/client"
)

// Binaries builds imago binaries once per test process (each variant on
// first use) in a directory removed by Cleanup.
type Binaries struct {
	dir  string
	mu   sync.Mutex
	once map[string]*sync.Once
	path map[string]string
	errs map[string]error
}

// NewBinaries makes an empty set in a temporary directory.
func NewBinaries() (*Binaries, error) {
	dir, err := os.MkdirTemp("", "imago-fleettest-")
	if err != nil {
		return nil, err
	}
	return &Binaries{dir: dir, once: map[string]*sync.Once{}, path: map[string]string{}, errs: map[string]error{}}, nil
}

// Cleanup removes the binaries.
func (b *Binaries) Cleanup() { os.RemoveAll(b.dir) }

// Get builds (once) the variant name: files maps paths inside the module
// (store/migrations/postgres/0003_x.sql) to their content, added to the
// build with go build -overlay; nil is this tree as it is.
func (b *Binaries) Get(tb testing.TB, name string, files map[string]string) string {
	tb.Helper()
	b.mu.Lock()
	o := b.once[name]
	if o == nil {
		o = new(sync.Once)
		b.once[name] = o
	}
	b.mu.Unlock()
	o.Do(func() {
		path, err := b.build(name, files)
		b.mu.Lock()
		b.path[name], b.errs[name] = path, err
		b.mu.Unlock()
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs[name]; err != nil {
		tb.Fatalf("fleettest: building %s: %v", name, err)
	}
	return b.path[name]
}

func (b *Binaries) build(name string, files map[string]string) (string, error) {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module: %v", err)
	}
	mod := strings.TrimSpace(string(root))
	out := filepath.Join(b.dir, name)
	args := []string{"build", "-o", out}
	if len(files) > 0 {
		replace := map[string]string{}
		for p, content := range files {
			f := filepath.Join(b.dir, name+"-"+filepath.Base(p))
			if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
				return "", err
			}
			replace[filepath.Join(mod, p)] = f
		}
		j, _ := json.Marshal(map[string]any{"Replace": replace})
		ov := filepath.Join(b.dir, name+"-overlay.json")
		if err := os.WriteFile(ov, j, 0o644); err != nil {
			return "", err
		}
		args = append(args, "-overlay", ov)
	}
	cmd := exec.Command("go", append(args, "./cmd/imago")...)
	cmd.Dir = mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return out, nil
}

// Env is a fleet under test.
type Env struct {
	TB      testing.TB
	Dir     string
	Bin     string
	PG      *pgtest.Cluster
	DB      string
	Cert    *testcert.Cert
	certF   string
	keyF    string
	EKRoots string
	CA      *softtpm.CA
	Policy  []byte
	// Interval and LeaseTTL are the replicas' --interval and --lease-ttl.
	Interval, LeaseTTL time.Duration

	mu       sync.Mutex
	Replicas []*Replica
}

// New starts a PostgreSQL cluster and prepares a fleet on a database of
// its own; bin is an imago binary (Binaries.Get).
func New(tb testing.TB, bin string) *Env {
	tb.Helper()
	e := &Env{TB: tb, Dir: tb.TempDir(), Bin: bin, Interval: time.Second, LeaseTTL: 3 * time.Second}
	e.PG = pgtest.Start(tb)
	e.DB = e.PG.CreateDatabase(tb, "fleet")
	e.Cert = testcert.New(tb)
	e.certF, e.keyF = e.Cert.Write(tb, e.Dir)
	var err error
	if e.CA, err = softtpm.NewCA("imago fleettest EK CA"); err != nil {
		tb.Fatal(err)
	}
	cpem, _, err := e.CA.PEM()
	if err != nil {
		tb.Fatal(err)
	}
	e.EKRoots = filepath.Join(e.Dir, "ek-roots")
	os.Mkdir(e.EKRoots, 0o755)
	if err := os.WriteFile(filepath.Join(e.EKRoots, "ca.pem"), cpem, 0o644); err != nil {
		tb.Fatal(err)
	}
	if e.Policy, err = emuhost.Policy(e.CA); err != nil {
		tb.Fatal(err)
	}
	return e
}

// Replica is one `imago verifier serve` process and the proxy in front
// of it.
type Replica struct {
	Name  string
	Addr  string // where it listens
	Proxy *faultproxy.Proxy
	Log   string
	proc  *testproc.Proc
}

// URL is the replica's URL through its proxy.
func (r *Replica) URL() string { return "https://" + r.Proxy.Addr() }

// Direct is the replica's own URL.
func (r *Replica) Direct() string { return "https://" + r.Addr }

// Running reports whether the process has not exited.
func (r *Replica) Running() bool { return r.proc.Running() }

// Kill kills the replica with SIGKILL.
func (r *Replica) Kill() { r.proc.Kill() }

// ExitCode is the exit status once the process has exited.
func (r *Replica) ExitCode() int { return r.proc.ExitCode() }

// Pid is the process id.
func (r *Replica) Pid() int { return r.proc.Pid() }

// Wait waits up to d for the process to exit and reports whether it did.
func (r *Replica) Wait(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for r.proc.Running() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// ReadLog returns the replica's log.
func (r *Replica) ReadLog() string {
	b, _ := os.ReadFile(r.Log)
	return string(b)
}

// HTTP returns a client trusting the replicas' certificate.
func (e *Env) HTTP() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.Cert.CertPEM)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// Start starts a replica of binary bin (e.Bin if empty) named name and
// waits until it answers; extra are more flags.
func (e *Env) Start(name, bin string, extra ...string) *Replica {
	tb := e.TB
	tb.Helper()
	r, err := e.Launch(name, bin, extra...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// Launch is Start returning an error (a replica that refuses to start).
func (e *Env) Launch(name, bin string, extra ...string) (*Replica, error) {
	if bin == "" {
		bin = e.Bin
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	r := &Replica{Name: name, Addr: addr, Log: filepath.Join(e.Dir, name+".log")}
	args := append([]string{"verifier", "serve", "--db", e.DB, "--listen", addr, "--tls-cert", e.certF, "--tls-key", e.keyF,
		"--ek-roots", e.EKRoots, "--interval", e.Interval.String(), "--lease-ttl", e.LeaseTTL.String(), "--replica", name,
		"--log-format", "json", "--log-level", "info"}, extra...)
	cmd := exec.Command(bin, args...)
	logf, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	hc := e.HTTP()
	ready := func() bool {
		rsp, err := hc.Get("https://" + addr + "/healthz")
		if err != nil {
			return false
		}
		rsp.Body.Close()
		return rsp.StatusCode == http.StatusOK
	}
	p, err := testproc.Start(cmd, ready, 90*time.Second)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %v\n%s", name, err, r.ReadLog())
	}
	r.proc = p
	r.Proxy = faultproxy.Start(e.TB, addr)
	e.TB.Cleanup(func() { p.Stop(syscall.SIGTERM, 15*time.Second) })
	e.mu.Lock()
	e.Replicas = append(e.Replicas, r)
	e.mu.Unlock()
	return r, nil
}

// URLs are the replicas' URLs through their proxies.
func (e *Env) URLs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, r := range e.Replicas {
		out = append(out, r.URL())
	}
	return out
}

// Client returns a client of every replica (through the proxies).
func (e *Env) Client(o client.Options) *client.Client {
	o.CA = e.Cert.CertPEM
	cl, err := client.NewFleet(e.URLs(), o)
	if err != nil {
		e.TB.Fatal(err)
	}
	return cl
}

// Ack is a verdict an attester was told.
type Ack struct {
	Round   uint64
	Verdict string
	At      time.Time
}

// Node is an emulated host attesting in a loop.
type Node struct {
	Host *emuhost.Host
	mu   sync.Mutex
	Acks []Ack
	Errs []error
}

// LastAck returns the node's last acknowledged verdict.
func (n *Node) LastAck() (Ack, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.Acks) == 0 {
		return Ack{}, false
	}
	return n.Acks[len(n.Acks)-1], true
}

// AcksCopy returns the node's acknowledged verdicts.
func (n *Node) AcksCopy() []Ack {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Ack(nil), n.Acks...)
}

// AddNodes adds count emulated hosts named prefix-i with the fleet's
// policy, enrols them and runs a first round (which must pass).
func (e *Env) AddNodes(ctx context.Context, cl *client.Client, prefix string, count int) []*Node {
	tb := e.TB
	tb.Helper()
	var nodes []*Node
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := range count {
		h, err := emuhost.New(e.CA, fmt.Sprintf("%s-%03d", prefix, i))
		if err != nil {
			tb.Fatal(err)
		}
		n := &Node{Host: h}
		nodes = append(nodes, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: h.Name, RuntimePolicy: e.Policy}); err != nil {
				errs <- fmt.Errorf("add %s: %w", h.Name, err)
				return
			}
			h.Measure(20)
			a := h.Attester(cl)
			if err := a.Enroll(ctx); err != nil {
				errs <- fmt.Errorf("enroll %s: %w", h.Name, err)
				return
			}
			res, err := a.Round(ctx)
			if err != nil || res.Verdict != attest.VerdictPass {
				errs <- fmt.Errorf("first round of %s: %v %+v", h.Name, err, res)
				return
			}
			n.Acks = append(n.Acks, Ack{res.Round, res.Verdict, time.Now()})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return nodes
}

// Attest runs every node's rounds (measure k files, one round, wait
// every) until ctx ends, each node with a client of its own from
// newClient (so that, as separate hosts, they start at different
// replicas). A round without a verdict is recorded in Node.Errs; the loop
// goes on.
func Attest(ctx context.Context, newClient func() *client.Client, nodes []*Node, k int, every time.Duration) (wait func()) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		cl := newClient()
		go func() {
			defer wg.Done()
			a := n.Host.Attester(cl)
			for ctx.Err() == nil {
				n.Host.Measure(k)
				res, err := a.Round(ctx)
				n.mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						n.Errs = append(n.Errs, err)
					}
				} else {
					n.Acks = append(n.Acks, Ack{res.Round, res.Verdict, time.Now()})
				}
				n.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(every):
				}
			}
		}()
	}
	return wg.Wait
}

// Serve runs a verifier in this process with cfg (a listener on
// 127.0.0.1 is made if cfg has none) until the test ends, and returns its
// URL (https if cfg has TLS).
func Serve(tb testing.TB, cfg verifier.Config) string {
	tb.Helper()
	if cfg.Listener == nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Listener = l
	}
	url := "http://" + cfg.Listener.Addr().String()
	if cfg.TLS != nil {
		url = "https://" + cfg.Listener.Addr().String()
	}
	srv, err := verifier.New(cfg)
	if err != nil {
		cfg.Listener.Close()
		tb.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	tb.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			tb.Errorf("verifier: %v", err)
		}
	})
	return url
}
