package adopt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// fakeFS is a securityfs stand-in the test writes: ima/ with the binary
// list and runtime_measurements_count, as a kernel appends to them.
type fakeFS struct {
	t    testing.TB
	root string
	dir  string
	mu   sync.Mutex
	n    int
}

// newFakeFS starts the list with the real bypass list (16 entries).
func newFakeFS(t testing.TB) *fakeFS {
	t.Helper()
	data, err := os.ReadFile("testdata/bypass-6.1/binary_runtime_measurements")
	if err != nil {
		t.Fatal(err)
	}
	return newFakeFSWith(t, data, 16)
}

func newFakeFSWith(t testing.TB, data []byte, n int) *fakeFS {
	t.Helper()
	root := t.TempDir()
	f := &fakeFS{t: t, root: root, dir: filepath.Join(root, "ima")}
	if err := os.Mkdir(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(data, n)
	return f
}

func (f *fakeFS) listPath() string { return filepath.Join(f.dir, listFile) }

// write appends raw record bytes and adds n to the count (the count file is
// replaced by a rename, so a reader never sees it half-written).
func (f *fakeFS) write(raw []byte, n int) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	lf, err := os.OpenFile(f.listPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := lf.Write(raw); err != nil {
		f.t.Fatal(err)
	}
	lf.Close()
	f.n += n
	f.setCount(f.n)
}

func (f *fakeFS) setCount(n int) {
	tmp := filepath.Join(f.dir, ".count.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(f.dir, countFile)); err != nil {
		f.t.Fatal(err)
	}
}

// append appends entries as the kernel lists them.
func (f *fakeFS) append(es ...*ima.Entry) {
	f.t.Helper()
	var raw []byte
	for _, e := range es {
		var err error
		if raw, err = ima.AppendBinary(raw, e, binary.LittleEndian); err != nil {
			f.t.Fatal(err)
		}
	}
	f.write(raw, len(es))
}

func (f *fakeFS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// entries makes n entries as a tcb policy lists them: ima-ng file
// measurements, every 7th an ima-buf entry, and the entries whose index
// is in viol violations (zero digests).
func entries(t testing.TB, from, n int, viol ...int) []*ima.Entry {
	t.Helper()
	var out []*ima.Entry
	for i := from; i < from+n; i++ {
		var e *ima.Entry
		var err error
		sum := sha256.Sum256([]byte(fmt.Sprintf("file content %d", i)))
		switch {
		case contains(viol, i):
			e, err = ima.NewEntry("ima-ng", binary.LittleEndian, 10, ima.DigestNG(ima.HashSHA256, make([]byte, 32)), ima.NameNG(fmt.Sprintf("/var/log/written-%d", i)))
			if err == nil {
				e.Digest = make([]byte, 20)
			}
		case i%7 == 0:
			e, err = ima.NewEntry("ima-buf", binary.LittleEndian, 10, ima.DigestNG(ima.HashSHA256, sum[:]), ima.NameNG(fmt.Sprintf("critical_%d", i)), ima.Buf([]byte(fmt.Sprintf("file content %d", i))))
		default:
			e, err = ima.NewEntry("ima-ng", binary.LittleEndian, 10, ima.DigestNG(ima.HashSHA256, sum[:]), ima.NameNG(fmt.Sprintf("/usr/bin/tool %d", i)))
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// testLogger logs through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// bootID writes a boot id file.
func bootID(t *testing.T, id string) string {
	p := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// running is an Adopter running in a goroutine.
type running struct {
	a      *Adopter
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.cancel(); <-r.done })
	return r
}

// stop cancels Run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.result(t, 20*time.Second, "within 20 s of its context ending")
}

// wait returns Run's error once it returns by itself.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	return r.result(t, 30*time.Second, "by itself")
}

func (r *running) result(t *testing.T, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("Run did not return %s; status %+v", what, r.a.Status())
	}
	return nil
}

// following starts a swtpm with banks, a securityfs stand-in with the real
// bypass list, and an adopter, and waits until it has adopted the list.
func following(t *testing.T, banks ...string) (*tpmtest.Swtpm, *fakeFS, *running) {
	t.Helper()
	s := swtpm(t, banks...)
	s.Start()
	fs := newFakeFS(t)
	r := start(t, Config{SecurityFS: fs.root, TPM: s.URI})
	r.until(t, "caught up", func(s Status) bool { return s.State == Following && s.Adopted == 16 })
	return s, fs, r
}

// until waits for the status to satisfy cond.
func (r *running) until(t *testing.T, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := r.a.Status()
		if cond(s) {
			return s
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("waiting for %s: Run returned %v; status %+v", what, err, s)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// swtpm starts nothing yet: a swtpm with these banks whose URI works once
// Start is called. It fails under CI when swtpm is missing.
func swtpm(t testing.TB, banks ...string) *tpmtest.Swtpm {
	t.Helper()
	testenv.Tool(t, "swtpm")
	testenv.Tool(t, "swtpm_setup")
	testenv.Tool(t, "tpm2_pcrread")
	return tpmtest.New(t, tpmtest.Options{Banks: banks})
}

// oracleReplay replays the list with testdata/replay.py (Python's hashlib,
// independent of imago) and returns PCR values per bank.
func oracleReplay(t *testing.T, list string, banks ...pcr.Bank) pcr.Set {
	t.Helper()
	py := testenv.Tool(t, "python3")
	args := []string{"testdata/replay.py", list}
	for _, b := range banks {
		args = append(args, b.String())
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("replay.py: %v\n%s", err, out)
	}
	set := make(pcr.Set)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		b, err := pcr.ParseBank(f[0])
		if err != nil || len(f) != 3 {
			t.Fatalf("replay.py: %q", line)
		}
		i, _ := strconv.Atoi(f[1])
		v, _ := hex.DecodeString(f[2])
		set.Put(b, i, v)
	}
	return set
}

// oraclePrefixes returns PCR 10 of bank b after each entry, by replay.py.
func oraclePrefixes(t *testing.T, list string, b pcr.Bank) map[string]int {
	t.Helper()
	py := testenv.Tool(t, "python3")
	out, err := exec.Command(py, "testdata/replay.py", "--prefixes", list, b.String(), "10").CombinedOutput()
	if err != nil {
		t.Fatalf("replay.py: %v\n%s", err, out)
	}
	m := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.Atoi(k)
		m[v] = n
	}
	return m
}

var succeedAt = regexp.MustCompile(`(sha1|sha256) PCR-10: succeed at entry (\d+)`)

// evmctlEntry runs `evmctl ima_measurement --ignore-violations -v` on the
// list against PCR values, once per bank (evmctl 1.4 reports success when
// the last of several banks matches), and returns the entry at which each of
// sha1 and sha256 in set succeeded; a bank that fails fails the test.
func evmctlEntry(t *testing.T, list string, set pcr.Set) map[pcr.Bank]int {
	t.Helper()
	evmctl := testenv.Tool(t, "evmctl")
	out := map[pcr.Bank]int{}
	for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
		if _, ok := set[b]; !ok {
			continue
		}
		var buf bytes.Buffer
		for _, i := range set.Indexes(b) {
			fmt.Fprintf(&buf, "PCR-%02d: %x\n", i, set[b][i])
		}
		p := filepath.Join(t.TempDir(), "pcrs-"+b.String())
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(evmctl, "ima_measurement", "--ignore-violations", "-v", "--pcrs", b.String()+","+p, list)
		res, err := cmd.CombinedOutput()
		m := succeedAt.FindSubmatch(res)
		if err != nil || m == nil {
			t.Fatalf("evmctl ima_measurement (%s): %v\n%s", b, err, tail(res))
		}
		out[b], _ = strconv.Atoi(string(m[2]))
	}
	return out
}

func tail(b []byte) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func appendRecord(dst []byte, e *ima.Entry) ([]byte, error) {
	return ima.AppendBinary(dst, e, binary.LittleEndian)
}
