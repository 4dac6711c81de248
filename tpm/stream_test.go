package tpm

import (
	"bytes"
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
	setIdle(tp, time.Hour)
	st.mu.Lock()
	st.maxHold = 0
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

// TestReadConsistent: while another client keeps extending PCR 10 (the IMA
// PCR) in all banks, a ReadPCRs of all 24 PCRs of three banks (nine
// TPM2_PCR_Read commands) restarts when pcrUpdateCounter moves, so each
// result is one snapshot: PCR 10 is at the same step of its chain in every
// bank. (PCR 16 would not do: libtpms, like the PC Client profile's
// TPM_PT_PCR_NO_INCREMENT, does not count extends of PCRs 16 and 23.)
func TestReadConsistent(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256", "sha384"}})
	s.Start()
	banks := []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384}
	reader, err := Open(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	writer, err := Open(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	// Connect per command, so swtpm interleaves the two clients' commands.
	setIdle(reader, 0)
	setIdle(writer, 0)

	ds := map[pcr.Bank][]byte{}
	chain := map[pcr.Bank][][]byte{}
	for _, b := range banks {
		ds[b] = digestOf(b, "consistency")
		chain[b] = [][]byte{pcr.Zero(b)}
	}
	step := func(b pcr.Bank, v []byte) int {
		for k := 0; k < 100000; k++ {
			if k == len(chain[b]) {
				chain[b] = append(chain[b], pcr.Extend(b, chain[b][k-1], ds[b]))
			}
			if bytes.Equal(chain[b][k], v) {
				return k
			}
		}
		return -1
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := writer.Extend(10, ds); err != nil {
				done <- err
				return
			}
		}
	}()
	ok := 0
	for range 30 {
		set, err := reader.ReadPCRs(banks, allPCRs())
		if err != nil {
			t.Logf("ReadPCRs: %v", err)
			continue
		}
		ok++
		var ks []int
		for _, b := range banks {
			v, _ := set.Get(b, 10)
			ks = append(ks, step(b, v))
		}
		if ks[0] < 0 || ks[0] != ks[1] || ks[1] != ks[2] {
			t.Errorf("PCR 10 at steps %v in banks %v: not one snapshot", ks, banks)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d/30 reads succeeded, %d restarts", ok, reader.restarts)
	if ok == 0 {
		t.Fatal("no read succeeded")
	}
	if reader.restarts == 0 {
		t.Log("no restart happened: the interleaving was not exercised")
	}
}

func allPCRs() []int {
	out := make([]int, 24)
	for i := range out {
		out[i] = i
	}
	return out
}

func digestOf(b pcr.Bank, msg string) []byte {
	h := b.New()
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// setIdle sets a socket TPM's idle hang-up (0: connect per command).
func setIdle(tp *TPM, d time.Duration) {
	st := tp.t.(*streamTPM)
	st.mu.Lock()
	st.idle = d
	st.mu.Unlock()
}
