package tpm_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// readClockTool runs tpm2_readclock, an oracle independent of imago, and
// returns its reset_count.
func readClockTool(t *testing.T, s *tpmtest.Swtpm) uint32 {
	t.Helper()
	testenv.Tool(t, "tpm2_readclock")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tpm2_readclock", "-T", s.TCTI()).CombinedOutput()
	if err != nil {
		t.Fatalf("tpm2_readclock: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`reset_count:\s*(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("tpm2_readclock: no reset_count in\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return uint32(n)
}

// TestGuardDetectsReset: an Extend under a guard session goes only into the
// TPM the guard was started on. swtpm killed and started again on the same
// state (a TPM Reset: PCRs cleared, reset count up, as tpm2_readclock
// shows) and swtpm replaced by a freshly manufactured TPM at the same
// address (same reset count as before, no way to tell by the counters)
// both make the next Extend fail with ErrGuardLost, and tpm2_pcrread shows
// that it extended nothing. Before guards, the transport redialled and the
// extend went into the reset TPM.
func TestGuardDetectsReset(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		name := map[bool]string{false: "same-state", true: "fresh-state"}[fresh]
		t.Run(name, func(t *testing.T) {
			s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
			s.Start()
			tp := mustOpen(t, s.URI)
			c0, err := tp.ReadClock()
			if err != nil {
				t.Fatal(err)
			}
			if tool := readClockTool(t, s); tool != c0.ResetCount {
				t.Fatalf("reset count %d, tpm2_readclock says %d", c0.ResetCount, tool)
			}
			if _, err := tp.StartGuard(); err != nil {
				t.Fatal(err)
			}
			d := map[pcr.Bank][]byte{pcr.SHA1: digestOf(pcr.SHA1, "x"), pcr.SHA256: digestOf(pcr.SHA256, "x")}
			if err := tp.Extend(16, d); err != nil {
				t.Fatalf("guarded extend: %v", err)
			}
			want := pcr.Extend(pcr.SHA256, pcr.Zero(pcr.SHA256), d[pcr.SHA256])
			if got, _ := s.PCRRead(t, "sha256:16").Get(pcr.SHA256, 16); !bytes.Equal(got, want) {
				t.Fatalf("PCR 16 %x, want %x", got, want)
			}
			if fresh {
				s.Replace()
			} else {
				s.Stop()
			}
			s.Start()
			err = tp.Extend(16, d)
			if !errors.Is(err, tpm.ErrGuardLost) || !tpm.NotExecuted(err) {
				t.Fatalf("extend after the TPM was reset: %v, want ErrGuardLost", err)
			}
			if got, _ := s.PCRRead(t, "sha256:16").Get(pcr.SHA256, 16); !bytes.Equal(got, pcr.Zero(pcr.SHA256)) {
				t.Fatalf("PCR 16 of the reset TPM was extended: %x", got)
			}
			// Lost stays lost: nothing is sent until a new guard.
			if err := tp.Extend(16, d); !errors.Is(err, tpm.ErrGuardLost) {
				t.Fatalf("second extend: %v", err)
			}
			c1, err := tp.ReadClock()
			if err != nil {
				t.Fatal(err)
			}
			if tool := readClockTool(t, s); tool != c1.ResetCount {
				t.Fatalf("reset count %d, tpm2_readclock says %d", c1.ResetCount, tool)
			}
			if !fresh && c1.ResetCount <= c0.ResetCount {
				t.Errorf("same state: reset count %d -> %d, want it to grow", c0.ResetCount, c1.ResetCount)
			}
			if _, err := tp.StartGuard(); err != nil {
				t.Fatal(err)
			}
			if err := tp.Extend(16, d); err != nil {
				t.Fatalf("extend under a new guard: %v", err)
			}
			if got, _ := s.PCRRead(t, "sha256:16").Get(pcr.SHA256, 16); !bytes.Equal(got, want) {
				t.Fatalf("PCR 16 %x, want %x", got, want)
			}
		})
	}
}

// TestGuardSessionHijack: after a reset, another client's session may get
// the guard's handle; its HMAC does not verify, so the extend still fails
// and does nothing.
func TestGuardSessionHijack(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	tp := mustOpen(t, s.URI)
	h, err := tp.StartGuard()
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Start()
	other := mustOpen(t, s.URI)
	oh, err := other.StartGuard()
	if err != nil {
		t.Fatal(err)
	}
	if oh != h {
		t.Fatalf("the new session got handle %#x, not %#x (swtpm numbers sessions from the same start after a reset)", oh, h)
	}
	d := map[pcr.Bank][]byte{pcr.SHA256: digestOf(pcr.SHA256, "y")}
	if err := tp.Extend(16, d); !errors.Is(err, tpm.ErrGuardLost) || !errors.Is(err, tpm2.TPMRCBadAuth) {
		t.Fatalf("extend through a session of another client: %v", err)
	}
	if got, _ := s.PCRRead(t, "sha256:16").Get(pcr.SHA256, 16); !bytes.Equal(got, pcr.Zero(pcr.SHA256)) {
		t.Fatalf("PCR 16 extended: %x", got)
	}
}

// TestFlushSession: a guard left by a process that died (no resource
// manager on swtpm tcp) is flushed by handle, freeing its slot: swtpm
// keeps at most 3 sessions loaded.
func TestFlushSession(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	for i := range 6 {
		tp, err := tpm.Open(s.URI)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.Close() })
		h, err := tp.StartGuard()
		if err != nil {
			t.Fatalf("guard %d: %v", i, err)
		}
		// As after a crash: the session stays loaded; the next process
		// flushes it by handle.
		tp2 := mustOpen(t, s.URI)
		if err := tp2.FlushSession(h); err != nil {
			t.Fatalf("flush %d: %v", i, err)
		}
	}
	tp := mustOpen(t, s.URI)
	if err := tp.FlushSession(0x81000001); err == nil {
		t.Error("flushed a persistent object handle")
	}
}
