package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// agentDirs returns --state-dir, --runtime-dir and --socket flags in fresh
// directories (the socket under a short path).
func agentDirs(t *testing.T) (args []string, runtime, socket string) {
	t.Helper()
	dir := t.TempDir()
	sd, err := os.MkdirTemp("", "imago-cli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	runtime, socket = filepath.Join(dir, "run"), filepath.Join(sd, "agent.sock")
	return []string{"--state-dir", filepath.Join(dir, "state"), "--runtime-dir", runtime, "--socket", socket}, runtime, socket
}

// startAgentCLI runs `imago agent args...` in this process until the test
// ends, and waits for `imago status` to answer.
func startAgentCLI(t *testing.T, socket string, args ...string) {
	t.Helper()
	startCLI(t, append([]string{"agent"}, args...), []string{"status", "--socket", socket})
}

func tempFiles(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i := range n {
		p := filepath.Join(dir, "f"+string(rune('a'+i)))
		os.WriteFile(p, []byte(p), 0o644)
		out = append(out, p)
	}
	return out
}

// TestAgentCLI runs the agent, measure, status and tpm pcrread commands on a
// swtpm, and checks the exported list with `imago log check` against
// tpm2_pcrread's own output file.
func TestAgentCLI(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	dirs, runtime, socket := agentDirs(t)
	startAgentCLI(t, socket, append(dirs, "--tpm", s.URI, "--tpm-wait", "5s")...)

	files := tempFiles(t, 3)
	r := runCLI(t, nil, append([]string{"measure", "--socket", socket}, files...)...)
	if r.code != 0 || strings.Count(r.stdout, "measured sha256:") != 3 {
		t.Fatalf("measure: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "measure", "--socket", socket, filepath.Join(t.TempDir(), "absent")); r.code != exitUsage || !strings.Contains(r.stdout, "error ") {
		t.Fatalf("measure of an absent file: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, nil, "status", "--socket", socket, "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status --json: %v %d\n%s", err, r.code, r.stdout)
	}
	for k, want := range map[string]any{"state": "initialised", "aggregate": "boot_aggregate", "tpm": s.URI,
		"hash": "sha256", "template": "ima-ng", "entries": 4.0} {
		if st[k] != want {
			t.Errorf("status %s = %v, want %v", k, st[k], want)
		}
	}

	// tpm pcrread --json equals tpm2_pcrread.
	r = runCLI(t, nil, "tpm", "pcrread", "--tpm", s.URI, "--json")
	got, err := pcr.ParseJSON([]byte(r.stdout))
	if err != nil || r.code != 0 {
		t.Fatalf("tpm pcrread: %v %d\n%s%s", err, r.code, r.stdout, r.stderr)
	}
	want := s.PCRRead(t, "")
	for _, b := range want.Banks() {
		for _, i := range want.Indexes(b) {
			w, _ := want.Get(b, i)
			g, _ := got.Get(b, i)
			if string(w) != string(g) {
				t.Errorf("%s PCR %d: imago %x, tpm2_pcrread %x", b, i, g, w)
			}
		}
	}

	// `imago log check` of the exported list against tpm2_pcrread's output.
	out, err := exec.Command("tpm2_pcrread", "-T", s.TCTI()).Output()
	if err != nil {
		t.Fatal(err)
	}
	yaml := filepath.Join(t.TempDir(), "pcrs.yaml")
	os.WriteFile(yaml, out, 0o644)
	list := filepath.Join(runtime, "binary_runtime_measurements")
	if r := runCLI(t, nil, "log", "check", list, "--pcrs", yaml); r.code != 0 || strings.Count(r.stdout, "matched at entry 4 of 4") != 2 {
		t.Fatalf("log check: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// `tpm pcrread`'s text form is tpm2_pcrread's: log check reads it too.
	r = runCLI(t, nil, "tpm", "pcrread", "--tpm", s.URI)
	text := filepath.Join(t.TempDir(), "pcrs.txt")
	os.WriteFile(text, []byte(r.stdout), 0o644)
	if r := runCLI(t, nil, "log", "check", list, "--pcrs", text); r.code != 0 || strings.Count(r.stdout, "matched at entry 4 of 4") != 2 {
		t.Fatalf("log check with tpm pcrread text: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestAgentCLIFailed: the TPM is reset under the agent (swtpm killed and
// started again). `imago measure` exits 1 and says the agent failed;
// `imago status` exits 1 and prints why and how to recover. Before, the
// measurement was "measured" into the reset TPM and both exited 0.
func TestAgentCLIFailed(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	dirs, _, socket := agentDirs(t)
	startAgentCLI(t, socket, append(dirs, "--tpm", s.URI, "--tpm-wait", "5s")...)
	files := tempFiles(t, 2)
	if r := runCLI(t, nil, "measure", "--socket", socket, files[0]); r.code != 0 {
		t.Fatalf("measure: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s.Stop()
	s.Start()
	r := runCLI(t, nil, "measure", "--socket", socket, files[1])
	if r.code != exitFailed || !strings.Contains(r.stdout, "error ") || !strings.Contains(r.stdout, "the TPM was reset") {
		t.Fatalf("measure into a reset TPM: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "status", "--socket", socket)
	if r.code != exitFailed || !strings.Contains(r.stdout, "state:     failed") || !strings.Contains(r.stdout, "To recover: reboot") {
		t.Fatalf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A FIFO is refused at once: exit 2.
	fifo := filepath.Join(t.TempDir(), "fifo")
	syscall.Mkfifo(fifo, 0o600)
	if r := runCLI(t, nil, "measure", "--socket", socket, fifo); r.code != exitFailed {
		t.Fatalf("measure of a FIFO while failed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestAgentCLIDeferredLate: no TPM; `imago late` ends the wait in bypass.
func TestAgentCLIDeferredLate(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{})
	dirs, _, socket := agentDirs(t)
	startAgentCLI(t, socket, append(dirs, "--tpm", s.URI, "--tpm-wait", "1h")...)
	r := runCLI(t, nil, "status", "--socket", socket)
	if !strings.Contains(r.stdout, "state:     deferred") {
		t.Fatalf("status:\n%s", r.stdout)
	}
	r = runCLI(t, nil, append([]string{"measure", "--socket", socket}, tempFiles(t, 1)...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "queued sha256:") {
		t.Fatalf("measure while deferred: %d\n%s", r.code, r.stdout)
	}
	r = runCLI(t, nil, "late", "--socket", socket, "--json")
	var st map[string]any
	json.Unmarshal([]byte(r.stdout), &st)
	if r.code != 0 || st["state"] != "bypass" || st["aggregate"] != "boot_aggregate_late" || st["entries"] != 2.0 {
		t.Fatalf("late: %d %v\n%s", r.code, st, r.stderr)
	}
}

func TestAgentCLIUsage(t *testing.T) {
	dirs, _, _ := agentDirs(t)
	for _, args := range [][]string{
		{"agent", "--init", "soon"},
		{"agent", "--tpm", "ftp://x"},
		{"agent", "--template", "ima", "--hash", "sha256"},
		{"agent", "--hash", "nosuch"},
		{"agent", "--pcr", "24"},
		{"tpm", "pcrread", "--pcrs", "3-1"},
	} {
		if r := runCLI(t, nil, append(args, dirs...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
	if r := runCLI(t, nil, "status", "--socket", filepath.Join(t.TempDir(), "none.sock")); r.code != exitUsage || !strings.Contains(r.stderr, "is 'imago agent' running") {
		t.Errorf("status without agent: %d\n%s", r.code, r.stderr)
	}
}

// TestDemo runs `imago demo`: exit 0 when the list matches the simulator.
func TestDemo(t *testing.T) {
	if !tpm.Available("sim") {
		if r := runCLI(t, nil, "demo"); r.code != exitUnsupported {
			t.Fatalf("demo without the simulator: exit %d", r.code)
		}
		testenv.Missing(t, "cgo", "the TPM simulator is not built in (CGO_ENABLED=0)")
	}
	r := runCLI(t, nil, "demo", "--dir", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stdout, "boot_aggregate_late") || !strings.Contains(r.stdout, "result: the list replays") {
		t.Fatalf("demo: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestAgentNotify: `imago agent` under systemd (Type=notify) sends READY=1
// with its state to $NOTIFY_SOCKET.
func TestAgentNotify(t *testing.T) {
	sd, err := os.MkdirTemp("", "imago-notify")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sd)
	path := filepath.Join(sd, "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	dirs, _, socket := agentDirs(t)
	startAgentCLI(t, socket, append(dirs, "--tpm", "none")...)
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	buf := make([]byte, 4096)
	for !strings.Contains(strings.Join(got, "\n"), "READY=1") {
		n, err := l.Read(buf)
		if err != nil {
			t.Fatalf("notifications %q: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	if all := strings.Join(got, "\n"); !strings.Contains(all, "READY=1\nSTATUS=bypass") {
		t.Errorf("notifications %q", got)
	}
}
