package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testproc"
)

// startTimeout bounds waiting for the server to accept connections.
const startTimeout = 60 * time.Second

// Cluster is one PostgreSQL cluster.
type Cluster struct {
	// URL connects to the "postgres" database as the superuser "imago"
	// (trust authentication on 127.0.0.1).
	URL string
	// Dir holds the data directory ("data"), the socket and the log.
	Dir  string
	Port int

	tb    testing.TB
	bin   string
	cred  *syscall.Credential
	mu    sync.Mutex
	proc  *testproc.Proc
	extra []string
}

// Options tune a cluster.
type Options struct {
	// Settings are extra server settings, "name=value" (passed as -c).
	Settings []string
}

// Start creates a cluster with initdb and starts it. It is stopped and
// removed when the test ends.
func Start(tb testing.TB, o ...Options) *Cluster {
	tb.Helper()
	c := New(tb, o...)
	c.Start()
	return c
}

// New creates a cluster with initdb but does not start it.
func New(tb testing.TB, o ...Options) *Cluster {
	tb.Helper()
	testenv.Linux(tb, "a PostgreSQL cluster")
	bin := bindir(tb)
	dir, err := os.MkdirTemp("", "imago-pgtest-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	c := &Cluster{Dir: dir, tb: tb, bin: bin}
	for _, opt := range o {
		c.extra = append(c.extra, opt.Settings...)
	}
	if os.Geteuid() == 0 {
		c.cred = postgresUser(tb)
		if err := os.Chmod(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			tb.Fatal(err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"),
		"-U", "imago", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	c.Port = freePort(tb)
	c.URL = fmt.Sprintf("postgres://imago@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	tb.Cleanup(c.Stop)
	return c
}

// bindir finds the PostgreSQL server binaries.
func bindir(tb testing.TB) string {
	tb.Helper()
	var cands []string
	if d := os.Getenv("PG_BINDIR"); d != "" {
		cands = append(cands, d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		cands = append(cands, strings.TrimSpace(string(out)))
	}
	vers, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(vers)))
	cands = append(cands, vers...)
	for _, d := range cands {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d
			}
		}
	}
	testenv.Missing(tb, "postgresql", "no initdb/postgres found (PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin)")
	return ""
}

func postgresUser(tb testing.TB) *syscall.Credential {
	tb.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		testenv.Missing(tb, "postgresql", "running as root and no postgres user to run the cluster as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts the server and waits until it accepts connections. It
// fails the test on error.
func (c *Cluster) Start() {
	c.tb.Helper()
	if err := c.start(); err != nil {
		c.tb.Fatalf("pgtest: %v", err)
	}
}

func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return fmt.Errorf("postgres already running")
	}
	args := []string{"-D", filepath.Join(c.Dir, "data"), "-p", strconv.Itoa(c.Port), "-k", c.Dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on"}
	for _, s := range c.extra {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	logf, err := os.OpenFile(filepath.Join(c.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := testproc.Start(cmd, func() bool { return ready(c.Port) }, startTimeout)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, c.Log())
	}
	c.proc = p
	return nil
}

// ready reports whether the server answers a startup message: a
// connection alone is accepted while it is still starting up.
func ready(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	// StartupMessage, protocol 3.0, user imago, database postgres.
	var body bytes.Buffer
	body.Write([]byte{0, 3, 0, 0})
	body.WriteString("user\x00imago\x00database\x00postgres\x00\x00")
	msg := make([]byte, 4, 4+body.Len())
	n := 4 + body.Len()
	msg[0], msg[1], msg[2], msg[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	msg = append(msg, body.Bytes()...)
	if _, err := conn.Write(msg); err != nil {
		return false
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		return false
	}
	return b[0] == 'R' // AuthenticationOk (trust); 'E' while starting up
}

// Stop shuts the server down (fast shutdown: SIGINT) and waits for it. The
// data stays; Start starts it again. Safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.Stop(syscall.SIGINT, 30*time.Second)
		c.proc = nil
	}
}

// Kill kills the server with SIGKILL (a crash) and waits for it.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.Kill()
		c.proc = nil
	}
}

// Log returns the server log.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
	return string(b)
}

// CreateDatabase creates a database and returns its URL.
func (c *Cluster) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "createdb"), "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "imago", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: createdb %s: %v\n%s", name, err, out)
	}
	return fmt.Sprintf("postgres://imago@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}
