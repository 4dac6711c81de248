package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/tpm/tpmtest"
)

// TestListDamagedInTheMiddle: one flipped bit in a record of the durable
// list with confirmed records after it. The agent refuses to start
// (ErrCorrupt), names the record, and leaves the file byte for byte as it
// was. Before, recovery cut the list at the damaged record, destroying
// every confirmed entry after it.
func TestListDamagedInTheMiddle(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 4, "damage")...)
	r.stop()
	path := filepath.Join(cfg.StateDir, listFile)
	data := mustRead(t, path)
	list := readListFile(t, path)
	// A bit in the name of entry 2 (of 5).
	var off int
	for _, e := range list[:2] {
		rec, _ := appendBinary(nil, e, e.Digest, binary.NativeEndian)
		off += len(rec)
	}
	off += 4 + 20 + 4 + len("ima-ng") + 4 + 20 // into the template data
	data[off] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), cfg)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("New with a damaged record in the middle: %v", err)
	}
	if got := mustRead(t, path); !bytes.Equal(got, data) {
		t.Fatalf("the damaged list was changed: %d bytes, was %d", len(got), len(data))
	}
}

// TestQueueDamagedInTheMiddle: the same for the queue of measurements kept
// while deferred. Before, the queue was cut at the damaged record and the
// acknowledged ("queued") measurements after it were lost silently.
func TestQueueDamagedInTheMiddle(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}}) // never started: deferred
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	for _, res := range r.measure(writeFiles(t, 3, "queued")...) {
		if res.Status != StatusQueued {
			t.Fatalf("%+v", res)
		}
	}
	r.stop()
	path := filepath.Join(cfg.StateDir, pendingFile)
	data := mustRead(t, path)
	data[40] ^= 0x80 // in the first record's template name or data
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("New with a damaged queue: %v", err)
	}
	if got := mustRead(t, path); !bytes.Equal(got, data) {
		t.Fatal("the damaged queue was changed")
	}
}

// TestStateModeTampered: state.json edited to another mode (or hash) than
// the list was made with is refused, the files untouched. Before, a TPM
// list whose state said "bypass" was carried on in bypass: no TPM check,
// nothing extended.
func TestStateModeTampered(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256", "sha384"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 1, "mode")...)
	r.stop()
	tpmState := mustRead(t, filepath.Join(cfg.StateDir, stateFile))

	bcfg, blogs := testConfig(t, "none")
	r = startAgent(t, bcfg, blogs)
	r.stop()
	bypassState := mustRead(t, filepath.Join(bcfg.StateDir, stateFile))

	edit := func(t *testing.T, data []byte, f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		orig []byte
		f    func(m map[string]any)
	}{
		{"tpm list, mode bypass", cfg, tpmState, func(m map[string]any) {
			m["mode"] = "bypass"
			delete(m, "banks")
			delete(m, "sizes")
			delete(m, "base")
			delete(m, "reset_count")
		}},
		{"tpm list, mode bypass only", cfg, tpmState, func(m map[string]any) { m["mode"] = "bypass" }},
		{"tpm list, unknown mode", cfg, tpmState, func(m map[string]any) { m["mode"] = "off" }},
		{"tpm list, hash sha384", cfg, tpmState, func(m map[string]any) { m["hash"] = "sha384" }},
		{"tpm list, other aggregate", cfg, tpmState, func(m map[string]any) { m["aggregate"] = BootAggregateLate }},
		{"bypass list, mode tpm", bcfg, bypassState, func(m map[string]any) {
			m["mode"] = "tpm"
			m["banks"] = []string{"sha256"}
			m["sizes"] = []int{32}
			m["base"] = map[string]map[string]string{"sha256": {"10": "0000000000000000000000000000000000000000000000000000000000000000"}}
		}},
		{"unknown field", cfg, tpmState, func(m map[string]any) { m["skip_tpm_check"] = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(tc.cfg.StateDir, stateFile)
			bad := edit(t, tc.orig, tc.f)
			if err := os.WriteFile(state, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			list := mustRead(t, filepath.Join(tc.cfg.StateDir, listFile))
			a, err := New(context.Background(), tc.cfg)
			if err == nil {
				st := a.Status()
				a.Close()
				t.Fatalf("started with an edited state (%s)", st.State)
			}
			if !errors.Is(err, ErrListMismatch) {
				t.Fatalf("%v, want ErrListMismatch", err)
			}
			if !bytes.Equal(mustRead(t, state), bad) || !bytes.Equal(mustRead(t, filepath.Join(tc.cfg.StateDir, listFile)), list) {
				t.Error("files changed")
			}
			os.WriteFile(state, tc.orig, 0o600)
		})
	}
	// The untouched states still start.
	for _, c := range []Config{cfg, bcfg} {
		a, err := New(context.Background(), c)
		if err != nil {
			t.Fatalf("%s: %v", c.TPM, err)
		}
		a.Close()
	}
}
