package tpm

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// TestStartupPath: swtpm powered on without TPM2_Startup really answers
// TPM_RC_INITIALIZE, and Open starts it.
func TestStartupPath(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}, NoStartup: true})
	s.Start()
	tg, err := parseURI(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	raw := newStreamTPM("tcp", tg.addr)
	_, err = tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(raw)
	if !errors.Is(err, tpm2.TPMRCInitialize) {
		t.Fatalf("GetCapability before Startup = %v, want TPM_RC_INITIALIZE", err)
	}
	tp, err := Open(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	getcap := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}
	if _, err := getcap.Execute(raw); err != nil {
		t.Fatalf("GetCapability after Open = %v", err)
	}
	if err := tp.Extend(16, map[pcr.Bank][]byte{pcr.SHA256: make([]byte, 32)}); err != nil {
		t.Fatal(err)
	}
}

// TestHeldConnection: the socket transport holds its connection across a
// burst, redials after the emulator restarts, and lets other swtpm clients
// (tpm2_pcrread) in when idle and during a steady stream of commands.
func TestHeldConnection(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	tp, err := Open(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	st := tp.t.(*streamTPM)
	d := map[pcr.Bank][]byte{pcr.SHA256: make([]byte, 32)}
	if err := tp.Extend(16, d); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	held := st.conn != nil
	st.mu.Unlock()
	if !held {
		t.Error("no connection held right after a command")
	}
	// Idle: the connection goes, so tpm2_pcrread gets swtpm.
	time.Sleep(3 * idleHangup)
	st.mu.Lock()
	held = st.conn != nil
	st.mu.Unlock()
	if held {
		t.Error("connection still held after idle")
	}
	s.PCRRead(t, "sha256:16")

	// A steady stream of extends does not lock tpm2_pcrread out.
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := tp.Extend(16, d); err != nil {
				done <- err
				return
			}
		}
	}()
	start := time.Now()
	s.PCRRead(t, "sha256:16")
	t.Logf("tpm2_pcrread during a stream of extends took %v", time.Since(start))
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Restart within the hold: the held connection is dead, which Send
	// sees before writing, so it redials and the command succeeds.
	st.mu.Lock()
	st.idle, st.maxHold = time.Hour, 0
	st.mu.Unlock()
	if err := tp.Extend(16, d); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Start()
	st.mu.Lock()
	held = st.conn != nil
	st.mu.Unlock()
	if !held {
		t.Fatal("connection not held across the restart")
	}
	if err := tp.Extend(16, d); err != nil {
		t.Fatalf("first command after restart: %v", err)
	}
}
