package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// checkTPM compares the agent's list with the swtpm's PCRs read by
// tpm2_pcrread, in every allocated bank: replayed by the replay package and
// by evmctl ima_measurement on the exported list; the ASCII export must be
// the lines evmctl prints for the binary export. It returns the list.
func checkTPM(t *testing.T, s *tpmtest.Swtpm, cfg Config) []*ima.Entry {
	t.Helper()
	list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
	pcrs := s.PCRRead(t, "")
	banks := s.AllocatedBanks(t)
	replayed := replayList(t, list, banks)
	for _, b := range banks {
		want, _ := pcrs.Get(b, cfg.PCR)
		got, _ := replayed.Get(b, cfg.PCR)
		if !bytes.Equal(want, got) {
			t.Errorf("%s PCR %d: tpm2_pcrread %x, list replays to %x", b, cfg.PCR, want, got)
		}
	}
	exported := filepath.Join(cfg.RuntimeDir, exportBinary)
	if b1, _ := os.ReadFile(exported); !bytes.Equal(b1, mustRead(t, filepath.Join(cfg.StateDir, listFile))) {
		t.Errorf("exported binary list differs from the durable list")
	}
	out := evmctlCheck(t, exported, pcrs)
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, strconv.Itoa(cfg.PCR)+" ") {
			lines = append(lines, l)
		}
	}
	ascii := strings.TrimSuffix(string(mustRead(t, filepath.Join(cfg.RuntimeDir, exportASCII))), "\n")
	// evmctl -v prints the kernel's line only for two-field templates with
	// a d-ng or d digest (it stops after the name, and prints a custom d
	// field raw), so the ASCII comparison is for those.
	if name := list[0].Template; (name == "ima-ng" || name == "ima-ngv2" || name == "ima") && ascii != strings.Join(lines, "\n") {
		t.Errorf("ascii export differs from evmctl's lines\nexport:\n%s\nevmctl:\n%s", ascii, strings.Join(lines, "\n"))
	}
	if n := strings.TrimSpace(string(mustRead(t, filepath.Join(cfg.RuntimeDir, exportCount)))); n != strconv.Itoa(len(list)) {
		t.Errorf("runtime_measurements_count %s, list has %d", n, len(list))
	}
	// Per-bank exports: each bank's file replays to that bank's PCR.
	for _, b := range banks {
		data := mustRead(t, filepath.Join(cfg.RuntimeDir, exportBinary+"_"+exportName(b)))
		r := ima.NewReader(bytes.NewReader(data), ima.ReaderOptions{DigestSize: b.Size()})
		v := make([]byte, b.Size())
		n := 0
		for e, err := range r.All() {
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Digest, e.TemplateDigest(b)) {
				t.Errorf("%s export entry %d: digest %x, template data hash to %x", b, n, e.Digest, e.TemplateDigest(b))
			}
			v = pcr.Extend(b, v, e.Digest)
			n++
		}
		if want, _ := pcrs.Get(b, cfg.PCR); !bytes.Equal(v, want) {
			t.Errorf("%s per-bank export replays to %x, TPM %x", b, v, want)
		}
	}
	return list
}

// checkAggregate compares the first entry with evmctl ima_boot_aggregate on
// the PCRs read by tpm2_pcrread.
func checkAggregate(t *testing.T, s *tpmtest.Swtpm, first *ima.Entry, name string) {
	t.Helper()
	if got := entryName(first); got != name {
		t.Fatalf("first entry %q, want %q", got, name)
	}
	pcrs := s.PCRRead(t, "sha1:0,1,2,3,4,5,6,7,8,9+sha256:0,1,2,3,4,5,6,7,8,9")
	agg := evmctlBootAggregate(t, pcrs)
	d := entryDigest(first)
	alg, _, _ := strings.Cut(d, ":")
	if agg[alg] != d {
		t.Errorf("boot aggregate %s, evmctl ima_boot_aggregate says %q", d, agg[alg])
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTPMPresentAtStart(t *testing.T) {
	for _, banks := range [][]string{{"sha256"}, {"sha1", "sha256", "sha384"}} {
		t.Run(strings.Join(banks, "+"), func(t *testing.T) {
			s := tpmtest.New(t, tpmtest.Options{Banks: banks})
			s.Start()
			preExtend(t, s.URI)
			cfg, logs := testConfig(t, s.URI)
			r := startAgent(t, cfg, logs)
			st := r.status()
			if st.State != "initialised" || st.Aggregate != BootAggregate || strings.Join(st.Banks, ",") != strings.Join(banks, ",") {
				t.Fatalf("status %+v", st)
			}
			files := writeFiles(t, 3, "present")
			for _, res := range r.measure(files...) {
				if res.Status != StatusMeasured {
					t.Fatalf("%+v", res)
				}
			}
			// Measure-once: unchanged files are not listed again; a changed
			// one is.
			for _, res := range r.measure(files[0], files[1]) {
				if res.Status != StatusUnchanged {
					t.Fatalf("re-measure: %+v", res)
				}
			}
			if err := os.WriteFile(files[1], []byte("changed"), 0o644); err != nil {
				t.Fatal(err)
			}
			if res := r.measure(files[1]); res[0].Status != StatusMeasured {
				t.Fatalf("changed file: %+v", res[0])
			}
			if st := r.status(); st.Entries != 5 {
				t.Fatalf("entries %d, want 5", st.Entries)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			list := checkTPM(t, s, cfg)
			checkAggregate(t, s, list[0], BootAggregate)
			if len(list) != 5 {
				t.Fatalf("%d entries", len(list))
			}
		})
	}
}

// TestTPMArrivesLate is the seed's case: no TPM at the first stage, one
// appears later. The list begins with boot_aggregate_late and holds the
// measurements asked for while deferred, in order.
func TestTPMArrivesLate(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	if st := r.status(); st.State != "deferred" {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), msgWillTryLater) {
		t.Errorf("no %q in the logs:\n%s", msgWillTryLater, logs)
	}
	files := writeFiles(t, 3, "deferred")
	for _, res := range r.measure(files...) {
		if res.Status != StatusQueued {
			t.Fatalf("%+v", res)
		}
	}
	if st := r.status(); st.Pending != 3 || st.Entries != 0 {
		t.Fatalf("status %+v", st)
	}
	s.Start()
	st := r.waitState("initialised")
	if st.Aggregate != BootAggregateLate || st.Entries != 4 || st.Pending != 0 {
		t.Fatalf("status %+v", st)
	}
	more := writeFiles(t, 1, "after")
	r.measure(more...)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	list := checkTPM(t, s, cfg)
	checkAggregate(t, s, list[0], BootAggregateLate)
	want := append(files, more...)
	for i, p := range want {
		real, _ := filepath.EvalSymlinks(p)
		if got := entryName(list[i+1]); got != strings.ReplaceAll(real, " ", "_") {
			t.Errorf("entry %d %q, want %q", i+1, got, real)
		}
	}
}

// TestNoTPMEver: the TPM never comes; when the wait expires the agent goes
// to bypass with a zero boot_aggregate_late (§12.3's line) and never
// extends, even after a TPM shows up.
func TestNoTPMEver(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	cfg, logs := testConfig(t, s.URI)
	cfg.TPMWait = 300 * time.Millisecond
	r := startAgent(t, cfg, logs)
	st := r.waitState("bypass")
	if st.Aggregate != BootAggregateLate {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), msgBypass) {
		t.Errorf("no %q in the logs", msgBypass)
	}
	s.Start() // too late: bypass is final
	r.measure(writeFiles(t, 2, "bypass")...)
	r.stop()
	ascii := string(mustRead(t, filepath.Join(cfg.RuntimeDir, exportASCII)))
	first, _, _ := strings.Cut(ascii, "\n")
	// ima-spec.md §12.3, a real kernel's bypass line.
	if want := "10 4e5d73ebadfd8f850cb93ce4de755ba148a9a7d5 ima-ng sha256:0000000000000000000000000000000000000000000000000000000000000000 boot_aggregate_late"; first != want {
		t.Errorf("first line\n got %s\nwant %s", first, want)
	}
	if n := len(readListFile(t, filepath.Join(cfg.StateDir, listFile))); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	v, _ := s.PCRRead(t, "sha256:10").Get(pcr.SHA256, 10)
	if !bytes.Equal(v, make([]byte, 32)) {
		t.Errorf("PCR 10 extended in bypass: %x", v)
	}
	// Only the SHA-1 per-bank files exist in bypass (§2.1).
	if _, err := os.Stat(filepath.Join(cfg.RuntimeDir, exportBinary+"_sha256")); !os.IsNotExist(err) {
		t.Errorf("sha256 export in bypass: %v", err)
	}
}

// TestTPMNone: --tpm none initialises at once in bypass with the kernel's
// message; the aggregate line is the real kernel's bypass line
// (realkernel/d-no-tpm).
func TestTPMNone(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	r := startAgent(t, cfg, logs)
	st := r.status()
	if st.State != "bypass" || st.Aggregate != BootAggregate || st.TPM != "none" {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), msgBypass) {
		t.Errorf("no %q in the logs", msgBypass)
	}
	r.stop()
	ascii := string(mustRead(t, filepath.Join(cfg.RuntimeDir, exportASCII)))
	want := "10 0adefe762c149c7cec19da62f0da1297fcfbffff ima-ng sha256:0000000000000000000000000000000000000000000000000000000000000000 boot_aggregate\n"
	if ascii != want {
		t.Errorf("ascii export\n got %q\nwant %q", ascii, want)
	}
	if _, err := os.Stat(realkernel); err == nil {
		kernel := mustRead(t, filepath.Join(realkernel, "d-no-tpm", "binary_runtime_measurements"))
		mine := mustRead(t, filepath.Join(cfg.RuntimeDir, exportBinary))
		if !bytes.HasPrefix(kernel, mine) {
			t.Errorf("bypass aggregate record differs from the real kernel's")
		}
	}
}

// TestInitLate: with InitLate the first stage never initialises, even with
// the TPM there; the late stage finds it: boot_aggregate_late, real
// aggregate.
func TestInitLate(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	preExtend(t, s.URI)
	cfg, logs := testConfig(t, s.URI)
	cfg.InitLate = true
	r := startAgent(t, cfg, logs)
	st := r.waitState("initialised")
	if st.Aggregate != BootAggregateLate {
		t.Fatalf("status %+v", st)
	}
	r.measure(writeFiles(t, 2, "initlate")...)
	r.stop()
	list := checkTPM(t, s, cfg)
	checkAggregate(t, s, list[0], BootAggregateLate)
}

// TestLateRequest: `imago late` ends the deferred state at once: no TPM, so
// bypass.
func TestLateRequest(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{})
	cfg, logs := testConfig(t, s.URI)
	r := startAgent(t, cfg, logs)
	r.measure(writeFiles(t, 1, "beforelate")...)
	st, err := RequestLate(context.Background(), cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "bypass" || st.Aggregate != BootAggregateLate || st.Entries != 2 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "trigger=\"late requested\"") {
		t.Errorf("late trigger not logged:\n%s", logs)
	}
	// A second request does nothing.
	if st2, err := RequestLate(context.Background(), cfg.Socket); err != nil || st2.Entries != 2 {
		t.Fatalf("second late: %+v %v", st2, err)
	}
}

// TestHashFallback: a hash the agent cannot compute (wp512) fails
// initialisation, which is retried with sha256, as init_ima does.
func TestHashFallback(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	cfg.Hash = "wp512"
	r := startAgent(t, cfg, logs)
	st := r.status()
	if st.Hash != "sha256" || st.State != "initialised" {
		t.Fatalf("status %+v", st)
	}
	if want := "Allocating wp512 failed, going to use default hash algorithm sha256"; !strings.Contains(logs.String(), want) {
		t.Errorf("no %q in the logs:\n%s", want, logs)
	}
	res := r.measure(writeFiles(t, 1, "fallback")...)
	if !strings.HasPrefix(res[0].Digest, "sha256:") {
		t.Errorf("digest %s", res[0].Digest)
	}
	r.stop()
	checkTPM(t, s, cfg)
}

// TestHashSHA384: ima_hash=sha384 on a TPM with a sha384 bank takes the
// aggregate from that bank (§6.2).
func TestHashSHA384(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256", "sha384"}})
	s.Start()
	preExtend(t, s.URI)
	cfg, logs := testConfig(t, s.URI)
	cfg.Hash = "sha384"
	r := startAgent(t, cfg, logs)
	res := r.measure(writeFiles(t, 1, "sha384")...)
	if !strings.HasPrefix(res[0].Digest, "sha384:") {
		t.Errorf("digest %s", res[0].Digest)
	}
	r.stop()
	list := checkTPM(t, s, cfg)
	if d := entryDigest(list[0]); !strings.HasPrefix(d, "sha384:") {
		t.Errorf("aggregate %s, want from the sha384 bank", d)
	}
	// The sha384 aggregate is H_sha384(PCR0..9) of the TPM's sha384 bank.
	pcrs := s.PCRRead(t, "sha384:0,1,2,3,4,5,6,7,8,9")
	h := pcr.SHA384.New()
	for i := range 10 {
		v, _ := pcrs.Get(pcr.SHA384, i)
		h.Write(v)
	}
	if want := "sha384:" + hexs(h.Sum(nil)); entryDigest(list[0]) != want {
		t.Errorf("aggregate %s, want %s", entryDigest(list[0]), want)
	}
}

func hexs(b []byte) string { return strings.ToLower(strings.TrimSpace(string(appendHex(nil, b)))) }

func appendHex(dst, b []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

// TestKernelPCR: where the kernel's IMA is active, PCR 10 is refused.
func TestKernelPCR(t *testing.T) {
	cfg, _ := testConfig(t, "none")
	if err := os.MkdirAll(filepath.Join(cfg.SecurityFS, "integrity", "ima"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrKernelPCR) {
		t.Fatalf("PCR 10 with kernel IMA: %v", err)
	}
	cfg.PCR = 11
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
}
