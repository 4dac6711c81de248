package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/adopt"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// kernelList puts a kernel's binary list (a real one: bypass-6.1, a boot
// without TPM) into cfg's securityfs stand-in, as ima/.
func kernelList(t *testing.T, cfg Config, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	n := len(readListFile(t, src))
	dir := filepath.Join(cfg.SecurityFS, "ima")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "binary_runtime_measurements")
	if err := os.WriteFile(list, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "runtime_measurements_count"), []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return list
}

const bypassList = "../adopt/testdata/bypass-6.1/binary_runtime_measurements"

// waitAdoption polls the status until the adoption satisfies cond.
func (r *running) waitAdoption(what string, cond func(adopt.Status) bool) Status {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := r.status()
		if st.Adoption != nil && cond(*st.Adoption) {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waiting for %s: %+v\nlogs:\n%s", what, st.Adoption, r.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentAdoptsKernelList: the agent starts before any TPM with
// Config.Adopt and its own list on PCR 11; when the TPM appears the kernel's
// bypass list is adopted into PCR 10, and the agent's own list begins with
// boot_aggregate_late from the TPM's PCR 0-9 (evmctl ima_boot_aggregate's
// value) followed by the adoption record; the agent measures into PCR 11 as
// usual; both lists replay to the TPM (evmctl).
func TestAgentAdoptsKernelList(t *testing.T) {
	testenv.Tool(t, "swtpm")
	testenv.Tool(t, "evmctl")
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	cfg, logs := testConfig(t, s.URI)
	cfg.PCR, cfg.Adopt, cfg.AdoptInterval, cfg.TPMWait = 11, true, 20*time.Millisecond, time.Minute
	list := kernelList(t, cfg, bypassList)
	r := startAgent(t, cfg, logs)
	st := r.waitAdoption("waiting", func(a adopt.Status) bool { return a.State == adopt.Waiting })
	if st.State != "deferred" {
		t.Fatalf("agent state %s before the TPM", st.State)
	}
	s.Start()
	st = r.waitAdoption("following", func(a adopt.Status) bool { return a.State == adopt.Following && a.Adopted == 16 })
	if st.State != "initialised" || st.Aggregate != BootAggregateLate || st.PCR != 11 {
		t.Fatalf("agent after adoption began: %+v", st)
	}
	if a := st.Adoption; a.AppearedAt == nil || *a.AppearedAt != 16 || a.TPM == "" || len(a.Banks) != 2 {
		t.Fatalf("adoption status %+v", a)
	}
	files := writeFiles(t, 2, "adopt")
	for _, res := range r.measure(files...) {
		if res.Error != "" {
			t.Fatalf("measure: %+v", res)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, logs)
	}

	tpmPCRs := s.PCRRead(t, "")
	evmctlCheck(t, list, tpmPCRs)
	own := readListFile(t, filepath.Join(cfg.StateDir, listFile))
	evmctlCheck(t, filepath.Join(cfg.StateDir, listFile), tpmPCRs)
	if len(own) != 4 {
		t.Fatalf("the agent's list has %d entries, want boot_aggregate_late, the record and 2 files", len(own))
	}
	agg := evmctlBootAggregate(t, tpmPCRs)["sha256"]
	if got := entryName(own[0]) + " " + entryDigest(own[0]); got != BootAggregateLate+" "+agg {
		t.Fatalf("first entry %q, evmctl ima_boot_aggregate %q", got, agg)
	}
	rec, ok, err := adopt.RecordOf(own[1])
	if !ok || err != nil || rec.Listed != 16 || rec.PCR != 10 || rec.Aggregate != agg || len(rec.Banks) != 2 || own[1].PCR != 11 {
		t.Fatalf("second entry: %+v ok=%v err=%v (PCR %d)", rec, ok, err, own[1].PCR)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("listed the adoption of the kernel's list")) {
		t.Fatalf("logs:\n%s", logs)
	}
}

// TestAgentAdoptionRefused: the kernel's list is not a bypass list (the
// kernel has its TPM): adoption refuses, says why in the status, and the
// agent's own work carries on.
func TestAgentAdoptionRefused(t *testing.T) {
	testenv.Tool(t, "swtpm")
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	cfg.PCR, cfg.Adopt, cfg.AdoptInterval = 11, true, 20*time.Millisecond
	kernelList(t, cfg, "../testdata/realkernel/b-ima-sig/binary_runtime_measurements")
	r := startAgent(t, cfg, logs)
	st := r.waitAdoption("refused", func(a adopt.Status) bool { return a.State == adopt.Refused })
	if st.Adoption.Reason != "not-bypass" || !strings.Contains(st.Adoption.Error, "found a TPM at boot") {
		t.Fatalf("adoption %+v", st.Adoption)
	}
	r.waitState("initialised")
	for _, res := range r.measure(writeFiles(t, 1, "refused")...) {
		if res.Error != "" {
			t.Fatalf("measure after the refusal: %+v", res)
		}
	}
	if v := s.PCRRead(t, "sha256:10"); !isZero(v[pcr.SHA256][10]) {
		t.Fatalf("PCR 10 touched: %x", v[pcr.SHA256][10])
	}
	if err := r.stop(); err != nil {
		t.Fatalf("agent: %v", err)
	}
}
