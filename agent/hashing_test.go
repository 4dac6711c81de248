//go:build linux

package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// sparseFile creates a 1 TiB file that holds no data: reading it returns
// zeros as fast as the CPU hashes them, for many minutes.
func sparseFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "huge")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentHolds reports whether this process has path open.
func agentHolds(path string) bool {
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); l == path {
			return true
		}
	}
	return false
}

// waitReleased waits until this process no longer has path open: the
// agent stopped hashing it.
func waitReleased(t *testing.T, path, why string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for agentHolds(path) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the agent still reads the file", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// within runs f and fails the test if it does not return within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// TestMeasureNotRegular: a FIFO with no writer, a directory and a device
// are refused at once, with ErrNotRegular (the kernel's IMA measures
// regular files only). Before, measuring a FIFO blocked in open, holding
// the agent's lock: status, every measurement and the gate waited.
func TestMeasureNotRegular(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	r := startAgent(t, cfg, logs)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, t.TempDir(), "/dev/null"} {
		within(t, 20*time.Second, "measure "+p, func() {
			res := r.measure(p)
			if !errors.Is(res[0].Err(), ErrNotRegular) {
				t.Errorf("%s: %+v, want ErrNotRegular", p, res[0])
			}
		})
	}
}

// TestSlowHashDoesNotStall: while a 1 TiB file is being hashed, status and
// other measurements are answered; when the client goes away its hashing
// stops (the agent closes the file), and the agent stops at once when
// asked. Before, hashing held the agent-wide lock to the end, and SIGTERM
// waited for it.
func TestSlowHashDoesNotStall(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	cfg.HashTimeout = time.Hour
	r := startAgent(t, cfg, logs)
	huge := sparseFile(t)
	small := writeFiles(t, 1, "while hashing")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := MeasurePaths(ctx, cfg.Socket, []string{huge})
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !agentHolds(huge) {
		if time.Now().After(deadline) {
			t.Fatal("the agent never opened the file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	within(t, 10*time.Second, "status while hashing", func() { r.status() })
	within(t, 10*time.Second, "another measurement while hashing", func() {
		if res := r.measure(small...); res[0].Status != StatusMeasured {
			t.Errorf("%+v", res[0])
		}
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the client: %v", err)
	}
	waitReleased(t, huge, "the client went away")

	// Again, and stop the agent while it hashes.
	go func() {
		_, err := MeasurePaths(context.Background(), cfg.Socket, []string{huge})
		done <- err
	}()
	for !agentHolds(huge) {
		time.Sleep(10 * time.Millisecond)
	}
	within(t, 20*time.Second, "stopping the agent while it hashes", func() { r.stop() })
	waitReleased(t, huge, "the agent stopped")
	<-done
}

// TestHashTimeout: hashing is bounded (Config.HashTimeout, --hash-timeout):
// a file not hashed in time is not measured, with ErrHashTimeout, and the
// file is let go. Before, there was no bound.
func TestHashTimeout(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	cfg.HashTimeout = 300 * time.Millisecond
	r := startAgent(t, cfg, logs)
	huge := sparseFile(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := MeasurePaths(ctx, cfg.Socket, []string{huge})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err(), ErrHashTimeout) {
		t.Fatalf("%+v, want ErrHashTimeout", res[0])
	}
	waitReleased(t, huge, "after the time limit")
	if st := r.status(); st.Entries != 1 {
		t.Errorf("entries %d", st.Entries)
	}
}
