//go:build linux

package adopt

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/pcr"
)

// The kill -9 test runs the adopter in a real process: this test binary,
// started again with IMAGO_ADOPT_HELPER=1.
func TestMain(m *testing.M) {
	if os.Getenv("IMAGO_ADOPT_HELPER") == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// helperMain adopts as `imago agent --adopt-kernel-list` would, logging
// every extend at debug level to stderr, until SIGTERM (exit 0).
func helperMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(Config{SecurityFS: os.Getenv("ADOPT_SECURITYFS"), TPM: os.Getenv("ADOPT_TPM"),
		StateFile: os.Getenv("ADOPT_STATE"), BootIDFile: os.Getenv("ADOPT_BOOTID"),
		Interval: 20 * time.Millisecond, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helper is an adopter process and the lines of its log.
type helper struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func startHelper(t *testing.T, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"IMAGO_ADOPT_HELPER=1"}, env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, lines: make(chan string, 1<<16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		io.Copy(io.Discard, stderr)
		close(h.lines)
		h.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range h.lines {
		}
	})
	return h
}

// expect reads log lines until one matches re, and returns its submatches.
func (h *helper) expect(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				t.Fatalf("the adopter exited before logging %s", re)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no log line matching %s within 60 s", re)
		}
	}
}

// TestAdoptKill9: an adopter process is killed with SIGKILL in the middle of
// a burst of extends; a new process finds how many entries the TPM holds
// (a prefix the independent replay confirms), extends the rest, follows the
// list, and exits 0 on SIGTERM. Had anything been extended twice (or
// skipped), evmctl and the replay would not match the TPM.
func TestAdoptKill9(t *testing.T) {
	s := swtpm(t, "sha1", "sha256")
	s.Start()
	fs := newFakeFS(t)
	fs.append(entries(t, 16, 3000, 100, 1500, 2999)...)
	env := []string{"ADOPT_SECURITYFS=" + fs.root, "ADOPT_TPM=" + s.URI,
		"ADOPT_STATE=" + t.TempDir() + "/adopt.json", "ADOPT_BOOTID=" + bootID(t, "boot-1")}

	h := startHelper(t, env...)
	h.expect(t, regexp.MustCompile(`msg=extended entry=1000 `))
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-h.done
	// Where did the kill leave the TPM? Find the prefix with the oracle.
	tpm := s.PCRRead(t, "sha256:10")
	prefixes := oraclePrefixes(t, fs.listPath(), pcr.SHA256)
	held, ok := prefixes[hex.EncodeToString(tpm[pcr.SHA256][10])]
	if !ok {
		t.Fatalf("after kill -9 the TPM's PCR 10 (%x) is no prefix of the list", tpm[pcr.SHA256][10])
	}
	if held < 1000 || held >= 3016 {
		t.Fatalf("killed at entry %d: not mid-follow", held)
	}
	t.Logf("killed with %d of 3016 entries in the TPM", held)

	h2 := startHelper(t, env...)
	m := h2.expect(t, regexp.MustCompile(`msg="resuming: .*held=(\d+) listed=(\d+) appeared_at=(\d+)`))
	if m[1] != strconv.Itoa(held) || m[2] != "3016" || m[3] != "3016" {
		t.Fatalf("resumed with held=%s listed=%s appeared_at=%s; the TPM held %d", m[1], m[2], m[3], held)
	}
	h2.expect(t, regexp.MustCompile(`msg="caught up`))
	fs.append(entries(t, 3016, 40, 3020)...)
	h2.expect(t, regexp.MustCompile(`msg=extended entry=3056 `))
	if err := h2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range h2.lines {
	}
	if err := <-h2.done; err != nil {
		t.Fatalf("the adopter's exit on SIGTERM: %v, want status 0", err)
	}
	checkTPM(t, fs, s, []pcr.Bank{pcr.SHA1, pcr.SHA256})
}
