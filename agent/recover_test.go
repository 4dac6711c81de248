package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

func TestRestartCarriesOn(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	files := writeFiles(t, 2, "restart")
	r.measure(files...)
	r.stop()

	r = startAgent(t, cfg, logs)
	st := r.status()
	if st.State != "initialised" || st.Entries != 3 || st.Aggregate != BootAggregate {
		t.Fatalf("after restart: %+v", st)
	}
	// The inode cache is gone, but the identical record is not listed
	// twice (§4.5).
	if res := r.measure(files[0]); res[0].Status != StatusDuplicate {
		t.Fatalf("re-measure after restart: %+v", res[0])
	}
	r.measure(writeFiles(t, 1, "restart2")...)
	r.stop()
	if list := checkTPM(t, s, cfg); len(list) != 4 {
		t.Fatalf("%d entries", len(list))
	}
}

// appendRecord appends a record for a made-up file to the durable list, as
// a crash between the fsync and the extend leaves it.
func appendRecord(t *testing.T, cfg Config, name string) {
	t.Helper()
	e, err := buildEntry(tmpl(t, "ima-ng"), &event{Name: name, Alg: ima.HashSHA256, Digest: make([]byte, 32), File: true}, uint32(cfg.PCR), binary.NativeEndian)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := appendBinary(nil, e, e.Digest, binary.NativeEndian)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(cfg.StateDir, listFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(rec); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverOneAhead(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 1, "ahead")...)
	r.stop()
	appendRecord(t, cfg, "/crashed/before/extend")

	r = startAgent(t, cfg, logs)
	if st := r.status(); st.Entries != 3 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "one entry ahead") {
		t.Errorf("not logged:\n%s", logs)
	}
	r.stop()
	checkTPM(t, s, cfg)
}

func TestRecoverTornTail(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 2, "torn")...)
	r.stop()
	path := filepath.Join(cfg.StateDir, listFile)
	good := mustRead(t, path)
	// A torn final record: its first 30 bytes, and, separately, a whole
	// record whose data never reached the disk (zeros).
	for _, tail := range [][]byte{good[len(good)-80 : len(good)-50], make([]byte, 120)} {
		if err := os.WriteFile(path, append(append([]byte(nil), good...), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		r = startAgent(t, cfg, logs)
		if st := r.status(); st.Entries != 3 {
			t.Fatalf("status %+v", st)
		}
		r.stop()
		if got := mustRead(t, path); string(got) != string(good) {
			t.Fatalf("list not cut back to its acknowledged records (%d bytes, want %d)", len(got), len(good))
		}
	}
	checkTPM(t, s, cfg)
}

// TestRecoverTPMReset: the TPM was reset under the list; the agent refuses
// to carry on.
func TestRecoverTPMReset(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 1, "reset")...)
	r.stop()
	s.Stop()
	s.Start() // power cycle: PCRs reset
	_, err := New(context.Background(), cfg)
	if !errors.Is(err, ErrListMismatch) {
		t.Fatalf("New after a TPM reset: %v", err)
	}
	if !strings.Contains(err.Error(), "move "+cfg.StateDir+" aside") {
		t.Errorf("the error does not say the way out: %v", err)
	}
}

// TestRecoverCutList: a list that lost acknowledged entries (cut at a record
// boundary, so it parses) is behind the TPM; the agent refuses it.
func TestRecoverCutList(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 2, "cut")...)
	r.stop()
	list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
	var keep []byte
	for _, e := range list[:2] {
		rec, _ := appendBinary(nil, e, e.Digest, binary.NativeEndian)
		keep = append(keep, rec...)
	}
	os.WriteFile(filepath.Join(cfg.StateDir, listFile), keep, 0o600)
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrListMismatch) {
		t.Fatalf("New with a cut list: %v", err)
	}
}

// TestNewBootMovesListAside: a list from an earlier boot is moved to
// previous/<boot id>/ and a new list starts.
func TestNewBootMovesListAside(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	cfg.BootIDFile = filepath.Join(t.TempDir(), "boot_id")
	os.WriteFile(cfg.BootIDFile, []byte("boot-one\n"), 0o644)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 1, "boot1")...)
	r.stop()
	s.Stop()
	s.Start()
	os.WriteFile(cfg.BootIDFile, []byte("boot-two\n"), 0o644)
	r = startAgent(t, cfg, logs)
	if st := r.status(); st.Entries != 1 || st.State != "initialised" {
		t.Fatalf("status %+v", st)
	}
	r.stop()
	if _, err := os.Stat(filepath.Join(cfg.StateDir, previousDir, "boot-one", listFile)); err != nil {
		t.Fatal(err)
	}
	checkTPM(t, s, cfg)
}

// TestDeferredQueueSurvivesRestart: measurements queued while deferred are
// durable: after a restart, still deferred, they are listed when the TPM
// comes.
func TestDeferredQueueSurvivesRestart(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	files := writeFiles(t, 2, "queued")
	r.measure(files...)
	r.stop()
	r = startAgent(t, cfg, logs)
	if st := r.status(); st.State != "deferred" || st.Pending != 2 {
		t.Fatalf("status %+v", st)
	}
	if res := r.measure(files[0]); res[0].Status != StatusDuplicate {
		t.Fatalf("%+v", res[0])
	}
	s.Start()
	r.waitState("initialised")
	r.stop()
	if list := checkTPM(t, s, cfg); len(list) != 3 {
		t.Fatalf("%d entries", len(list))
	}
}

// TestExtendFailure: the TPM goes away while the agent runs. The entry is in
// the list but not extended: the agent answers with an error, says failed,
// and refuses further measurements; nothing acknowledged is lost.
func TestExtendFailure(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	files := writeFiles(t, 2, "vanish")
	r.measure(files[0])
	s.Stop()
	if res := r.measure(files[1]); res[0].Status != StatusError {
		t.Fatalf("measure with the TPM gone: %+v", res[0])
	}
	st := r.status()
	if st.State != "failed" || st.Error == "" {
		t.Fatalf("status %+v", st)
	}
	if res := r.measure(writeFiles(t, 1, "after")...); res[0].Status != StatusError {
		t.Fatalf("measure after failure: %+v", res[0])
	}
	r.stop()
	// The list holds the acknowledged entries only: the extend never
	// reached a TPM (nothing listens), so the entry was cut back.
	list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
	if len(list) != 2 {
		t.Fatalf("%d entries", len(list))
	}
}

// TestRecoverInterruptedDrain: a crash while the queued measurements were
// being listed leaves the list with the first k of them and the queue
// whole; the restart lists the rest, once each.
func TestRecoverInterruptedDrain(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 1, "drain")...)
	s.Start()
	r.waitState("initialised")
	r.stop()
	list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
	if len(list) != 2 {
		t.Fatalf("%d entries", len(list))
	}
	// The queue as it was before the crash: q0 (already listed), q1, q2.
	queue, _ := appendBinary(nil, list[1], list[1].Digest, binary.NativeEndian)
	for _, name := range []string{"/queued/one", "/queued/two"} {
		e, err := buildEntry(tmpl(t, "ima-ng"), &event{Name: name, Alg: ima.HashSHA256, Digest: make([]byte, 32), File: true}, 10, binary.NativeEndian)
		if err != nil {
			t.Fatal(err)
		}
		queue, _ = appendBinary(queue, e, e.Digest, binary.NativeEndian)
	}
	os.WriteFile(filepath.Join(cfg.StateDir, pendingFile), queue, 0o600)
	r = startAgent(t, cfg, logs)
	if st := r.status(); st.Entries != 4 || st.Pending != 0 {
		t.Fatalf("status %+v", st)
	}
	r.stop()
	list = checkTPM(t, s, cfg)
	if entryName(list[2]) != "/queued/one" || entryName(list[3]) != "/queued/two" {
		t.Fatalf("entries %s %s", entryName(list[2]), entryName(list[3]))
	}
	if fi, _ := os.Stat(filepath.Join(cfg.StateDir, pendingFile)); fi.Size() != 0 {
		t.Fatalf("queue not emptied")
	}
}

// TestInitLateNone: --init late with --tpm none has no TPM to wait for: the
// late stage runs at once, in bypass.
func TestInitLateNone(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	cfg.InitLate = true
	r := startAgent(t, cfg, logs)
	if st := r.waitState("bypass"); st.Aggregate != BootAggregateLate {
		t.Fatalf("status %+v", st)
	}
}

func TestLocked(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	startAgent(t, cfg, logs)
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrLocked) {
		t.Fatalf("second agent on the same state directory: %v", err)
	}
}
