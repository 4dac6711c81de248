package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// TestTPMResetWhileRunning: swtpm is killed and started again under a
// running agent, on the same state (a TPM Reset: PCRs cleared, reset count
// up) and as a freshly manufactured TPM at the same address (same reset
// count: only the guard session and the PCRs tell). The next measurement
// must not be extended into that TPM: the agent fails, status says so
// with the way out, measure is answered with CodeFailed, tpm2_pcrread
// shows the PCR untouched, and the list keeps exactly the acknowledged
// entries. Before, the transport redialled, the extend went into the reset
// TPM and measure said "measured": the list no longer replayed.
func TestTPMResetWhileRunning(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(map[bool]string{false: "same-state", true: "fresh-state"}[fresh], func(t *testing.T) {
			s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
			s.Start()
			cfg, logs := testConfig(t, s.URI)
			r := startAgent(t, cfg, logs)
			files := writeFiles(t, 3, "reset")
			if res := r.measure(files[0]); res[0].Status != StatusMeasured {
				t.Fatalf("%+v", res[0])
			}
			if fresh {
				s.Replace()
			} else {
				s.Stop()
			}
			s.Start()
			res := r.measure(files[1])
			if res[0].Status != StatusError || !errors.Is(res[0].Err(), ErrFailed) {
				t.Fatalf("measure into a reset TPM: %+v", res[0])
			}
			if !strings.Contains(res[0].Error, "To recover: reboot") {
				t.Errorf("the error does not say how to recover: %s", res[0].Error)
			}
			st := r.status()
			if st.State != "failed" || !strings.Contains(st.Error, ErrTPMReset.Error()) || st.Entries != 2 {
				t.Fatalf("status %+v", st)
			}
			if res := r.measure(files[2]); !errors.Is(res[0].Err(), ErrFailed) {
				t.Fatalf("measure after the failure: %+v", res[0])
			}
			// Nothing went into the reset TPM.
			for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
				if v, _ := s.PCRRead(t, b.String()+":10").Get(b, 10); !bytes.Equal(v, pcr.Zero(b)) {
					t.Errorf("%s PCR 10 of the reset TPM was extended: %x", b, v)
				}
			}
			r.stop()
			list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
			if len(list) != 2 || entryName(list[1]) != strings.ReplaceAll(realPath(t, files[0]), " ", "_") {
				t.Fatalf("list: %d entries", len(list))
			}
			if exp := mustRead(t, filepath.Join(cfg.RuntimeDir, exportBinary)); !bytes.Equal(exp, mustRead(t, filepath.Join(cfg.StateDir, listFile))) {
				t.Error("the exports differ from the list")
			}
			// A restart refuses the list (it does not match the TPM).
			if _, err := New(context.Background(), cfg); !errors.Is(err, ErrListMismatch) {
				t.Fatalf("restart: %v", err)
			}
		})
	}
}

// TestGuardFlushedByOthers: another client flushes the agent's guard
// session (tpm2_flushcontext would): the TPM was not reset and its PCR is
// the list's, so the agent starts a new guard and lists the entry once;
// the list replays to the TPM (tpm2_pcrread, evmctl).
func TestGuardFlushedByOthers(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	files := writeFiles(t, 2, "flushed")
	r.measure(files[0])
	var g guardRecord
	if err := json.Unmarshal(mustRead(t, filepath.Join(cfg.StateDir, sessionFile)), &g); err != nil {
		t.Fatal(err)
	}
	other, err := tpm.Open(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.FlushSession(g.Handle); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if res := r.measure(files[1]); res[0].Status != StatusMeasured {
		t.Fatalf("%+v\n%s", res[0], logs)
	}
	if st := r.status(); st.State != "initialised" || st.Entries != 3 {
		t.Fatalf("status %+v", st)
	}
	r.stop()
	if list := checkTPM(t, s, cfg); len(list) != 3 {
		t.Fatalf("%d entries", len(list))
	}
}

// TestResetBetweenRuns: the TPM is reset while the agent is stopped and
// its PCR brought back to the list's value by replaying the list into it
// (as an attacker hiding the reset would): the reset count recorded in
// state.json still tells, and the agent refuses the list.
func TestResetBetweenRuns(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 1, "between")...)
	r.stop()
	list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
	s.Stop()
	s.Start()
	tp, err := tpm.Open(s.URI)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if err := tp.Extend(10, map[pcr.Bank][]byte{pcr.SHA256: e.TemplateDigest(pcr.SHA256)}); err != nil {
			t.Fatal(err)
		}
	}
	tp.Close()
	_, err = New(context.Background(), cfg)
	if !errors.Is(err, ErrListMismatch) || !strings.Contains(err.Error(), "reset count") {
		t.Fatalf("New after a hidden reset: %v", err)
	}
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
