package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/replay"
	"github.com/imago-ima/imago/tpm"
)

// syncBuffer collects the agent's logs for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig returns a Config with private directories, a short socket path
// and fast polling.
func testConfig(t *testing.T, uri string) (Config, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "imago-agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	logs := &syncBuffer{}
	return Config{
		TPM:          uri,
		StateDir:     filepath.Join(dir, "state"),
		RuntimeDir:   filepath.Join(dir, "run"),
		Socket:       filepath.Join(sockDir, "agent.sock"),
		PCR:          DefaultPCR,
		TPMWait:      20 * time.Second,
		PollInterval: 20 * time.Millisecond,
		SecurityFS:   filepath.Join(dir, "securityfs"),
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, logs
}

// running is an agent served in this process.
type running struct {
	t      *testing.T
	cfg    Config
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, cfg Config, logs *syncBuffer) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	cfg.Ready = ready
	r := &running{t: t, cfg: cfg, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-r.done:
		cancel()
		t.Fatalf("agent did not start: %v\nlogs:\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("agent did not start in time\nlogs:\n%s", logs)
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the agent and returns Run's result.
func (r *running) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		r.t.Fatalf("agent did not stop")
	}
	return nil
}

func (r *running) status() Status {
	r.t.Helper()
	st, err := QueryStatus(context.Background(), r.cfg.Socket)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *running) measure(paths ...string) []Result {
	r.t.Helper()
	res, err := MeasurePaths(context.Background(), r.cfg.Socket, paths)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// waitState polls the status until it is want.
func (r *running) waitState(want string) Status {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := r.status()
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("state %q, want %q\nlogs:\n%s", st.State, want, r.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeFiles creates n files with distinct contents and returns their paths.
func writeFiles(t *testing.T, n int, tag string) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("file %s %d.txt", tag, i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%s content %d\n", tag, i)), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// readList reads a binary list written by the agent (native order, SHA-1
// column).
func readListFile(t *testing.T, path string) []*ima.Entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ima.Entry
	for e, err := range ima.NewReader(bytes.NewReader(data), ima.ReaderOptions{Order: binary.NativeEndian, DigestSize: 20}).All() {
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, e)
	}
	return out
}

func seq(entries []*ima.Entry) iter.Seq2[*ima.Entry, error] {
	return func(yield func(*ima.Entry, error) bool) {
		for _, e := range entries {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// replayList replays entries in banks (replay package, the code `imago log
// replay` and `log check` use).
func replayList(t *testing.T, entries []*ima.Entry, banks []pcr.Bank) pcr.Set {
	t.Helper()
	res, err := replay.Replay(seq(entries), replay.Options{Banks: banks, ListBank: pcr.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	if res.TemplateMismatchCount != 0 {
		t.Fatalf("template digest mismatches: %+v", res.TemplateMismatches)
	}
	return res.PCRs
}

// entryName returns the n-ng (or n) field of e.
func entryName(e *ima.Entry) string {
	for _, f := range e.Fields {
		if f.ID == ima.FieldNNG || f.ID == ima.FieldN {
			return strings.TrimRight(string(f.Data), "\x00")
		}
	}
	return ""
}

func entryDigest(e *ima.Entry) string {
	for _, f := range e.Fields {
		if f.ID == ima.FieldDNG {
			alg, sum, _ := bytes.Cut(f.Data, []byte{0})
			return fmt.Sprintf("%s%x", alg, sum)
		}
	}
	return ""
}

// evmctlCheck runs `evmctl ima_measurement --pcrs <bank>,<file> ...` on the
// list with PCRs read by tpm2_pcrread and fails unless evmctl reports a
// match in every bank. It returns evmctl's verbose output.
func evmctlCheck(t *testing.T, list string, pcrs pcr.Set) string {
	t.Helper()
	testenv.Tool(t, "evmctl")
	dir := t.TempDir()
	// evmctl 1.4 takes at most two --pcrs files, and knows only sha1 and
	// sha256 there ("Unknown algorithm 'sha384'"): check one bank per run;
	// other banks are checked against tpm2_pcrread by the replay.
	var verbose string
	for _, b := range pcrs.Banks() {
		if b != pcr.SHA1 && b != pcr.SHA256 {
			continue
		}
		var sb strings.Builder
		for _, i := range pcrs.Indexes(b) {
			v, _ := pcrs.Get(b, i)
			fmt.Fprintf(&sb, "PCR-%02d: %X\n", i, v)
		}
		f := filepath.Join(dir, "pcrs-"+b.String())
		if err := os.WriteFile(f, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-v", "ima_measurement", "--pcrs", b.String() + "," + f, list}
		out, err := exec.Command("evmctl", args...).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("Matched per TPM bank calculated digest(s).")) {
			t.Fatalf("evmctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if verbose == "" {
			verbose = string(out)
		}
	}
	return verbose
}

// evmctlBootAggregate runs `evmctl ima_boot_aggregate --pcrs ...` and returns
// its "<alg>:<hex>" lines by algorithm.
func evmctlBootAggregate(t *testing.T, pcrs pcr.Set) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"ima_boot_aggregate"}
	for _, b := range pcrs.Banks() {
		var sb strings.Builder
		for _, i := range pcrs.Indexes(b) {
			v, _ := pcrs.Get(b, i)
			fmt.Fprintf(&sb, "PCR-%02d: %X\n", i, v)
		}
		f := filepath.Join(dir, "pcrs-"+b.String())
		os.WriteFile(f, []byte(sb.String()), 0o644)
		args = append(args, "--pcrs", b.String()+","+f)
	}
	out, err := exec.Command("evmctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("evmctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if alg, _, ok := strings.Cut(line, ":"); ok && !strings.Contains(alg, " ") {
			m[alg] = line
		}
	}
	return m
}

// preExtend extends PCRs 0-9 of every bank with distinct values, as firmware
// would, so that boot aggregates are not the hash of zeros.
func preExtend(t *testing.T, uri string) {
	t.Helper()
	tp, err := tpm.Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	banks, err := tp.Banks()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d := map[pcr.Bank][]byte{}
		for _, b := range banks {
			h := b.New()
			fmt.Fprintf(h, "firmware event %d", i)
			d[b] = h.Sum(nil)
		}
		if err := tp.Extend(i, d); err != nil {
			t.Fatal(err)
		}
	}
}

func isNoTPM(err error) bool { return errors.Is(err, tpm.ErrNoTPM) }
