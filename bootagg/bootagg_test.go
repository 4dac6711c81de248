package bootagg

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/eventlog"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
)

// The expected values in these tests come from outside imago: boot_aggregate
// entries written by real kernels, PCRs read from TPMs, ima-evm-utils'
// EXPECTED value and evmctl run on the same input.

// fixture returns the path of testdata/<rel> at the module root (a missing
// file fails the test); an absolute path, as testfixture.Extra returns for
// the extra corpus in ../shared, is returned as it is.
func fixture(t testing.TB, rel string) string {
	t.Helper()
	if filepath.IsAbs(rel) {
		return rel
	}
	return testfixture.Path(t, rel)
}

// extra returns the path of ../shared/fixtures/<rel> (testfixture.Extra).
func extra(t testing.TB, rel string) string {
	t.Helper()
	return testfixture.Extra(t, rel)
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x"))
	if err != nil {
		t.Fatalf("bad hex %q", s)
	}
	return b
}

// entry is the boot aggregate entry of a list.
type entry struct {
	name, alg string
	digest    []byte
}

// firstASCII reads the first line of an ascii_runtime_measurements file:
// "PCR template-digest template alg:hex name".
func firstASCII(t testing.TB, rel string) entry {
	t.Helper()
	line, _, _ := strings.Cut(string(readFile(t, rel)), "\n")
	f := strings.Fields(line)
	if len(f) != 5 {
		t.Fatalf("%s: first line %q", rel, line)
	}
	alg, h, ok := strings.Cut(f[3], ":")
	if !ok {
		t.Fatalf("%s: digest %q", rel, f[3])
	}
	return entry{f[4], alg, mustHex(t, h)}
}

// firstBinary reads the first record of a binary ima-ng list (LE host) with
// tdSize-byte template digests: pcr, digest, name, template data (d-ng, n-ng).
func firstBinary(t testing.TB, rel string, tdSize int) entry {
	t.Helper()
	b := readFile(t, rel)
	le := binary.LittleEndian
	p := 4 + tdSize
	n := int(le.Uint32(b[p:]))
	p += 4
	if string(b[p:p+n]) != "ima-ng" {
		t.Fatalf("%s: template %q", rel, b[p:p+n])
	}
	p += n + 4 // template data length
	dl := int(le.Uint32(b[p:]))
	d := b[p+4 : p+4+dl]
	p += 4 + dl
	nl := int(le.Uint32(b[p:]))
	name := strings.TrimRight(string(b[p+4:p+4+nl]), "\x00")
	alg, sum, ok := bytes.Cut(d, []byte{':', 0})
	if !ok {
		t.Fatalf("%s: d-ng %x", rel, d)
	}
	return entry{name, string(alg), sum}
}

// parseEvmctlPCRs reads "PCR-NN: HEX" (realkernel pcrs-<alg>.txt) or
// tsspcrread's "N: hex" into s, with pcr.ParseEvmctl.
func parseEvmctlPCRs(t testing.TB, rel string, b pcr.Bank, s pcr.Set) {
	t.Helper()
	got, err := pcr.ParseEvmctl(b, readFile(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	s.Merge(got)
}

// parsePCRRead reads tpm2_pcrread output with pcr.ParseTPM2YAML.
func parsePCRRead(t testing.TB, rel string) pcr.Set {
	t.Helper()
	s, err := pcr.ParseTPM2YAML(readFile(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return s
}

// parseIndexed reads tsspcrread output ("N: hex").
func parseIndexed(t testing.TB, rel string, b pcr.Bank) pcr.Set {
	t.Helper()
	s := make(pcr.Set)
	parseEvmctlPCRs(t, rel, b, s)
	return s
}

func replay(t testing.TB, rel string) pcr.Set {
	t.Helper()
	l, err := eventlog.ReadLog(bytes.NewReader(readFile(t, rel)))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := l.Replay()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// evmctlAggregate runs `evmctl ima_boot_aggregate args...` and returns its
// "alg:hex" lines by algorithm.
func evmctlAggregate(t testing.TB, args ...string) map[string][]byte {
	t.Helper()
	tool := testenv.Tool(t, "evmctl")
	var stderr bytes.Buffer
	cmd := exec.Command(tool, append([]string{"ima_boot_aggregate"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("evmctl %v: %v", args, err)
	}
	if bytes.Contains(stderr.Bytes(), []byte("Failed reading")) {
		// evmctl 1.4 stops at the first event with no event data ("Failed
		// reading event data (short read)") and prints the partial aggregate.
		testenv.Env(t, testenv.ToolVersion, "evmctl 1.4 could not read the whole log: %s", bytes.TrimSpace(stderr.Bytes()))
	}
	m := map[string][]byte{}
	for _, line := range strings.Split(string(out), "\n") {
		if alg, h, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.Contains(alg, " ") {
			m[alg] = mustHex(t, h)
		}
	}
	if len(m) == 0 {
		t.Fatalf("evmctl %v printed no aggregate: %s", args, out)
	}
	return m
}

func checkRule(t *testing.T, e entry, set pcr.Set, want Rule) {
	t.Helper()
	got, err := Check(e.name, e.alg, e.digest, set)
	if err != nil || got != want {
		t.Errorf("Check(%s %s:%x) = %v, %v; want %v", e.name, e.alg, e.digest, got, err, want)
	}
}

// TestIMAEvmUtilsSample: ima-evm-utils tests/boot_aggregate.test requires
// sha256:83d19723... from the sample event log (EXPECTED.json), the same
// value as the sample list's boot_aggregate line. The sha1 bank's aggregate
// from the TPM's sha1 PCRs (tsspcrread dump) must equal evmctl's on the same
// PCRs and our replay of the log.
func TestIMAEvmUtilsSample(t *testing.T) {
	const dir = "public/ima-evm-utils/tests/"
	var exp map[string]struct {
		Expected string `json:"expected_boot_aggregate"`
	}
	if err := json.Unmarshal(readFile(t, "public/ima-evm-utils/EXPECTED.json"), &exp); err != nil {
		t.Fatal(err)
	}
	alg, h, _ := strings.Cut(exp["sample-binary_bios_measurements-pcrs-8-9 + sample-ascii_runtime_measurements-pcrs-8-9"].Expected, ":")
	want := mustHex(t, h)
	e := firstASCII(t, dir+"sample-ascii_runtime_measurements-pcrs-8-9")
	if e.alg != alg || !bytes.Equal(e.digest, want) {
		t.Fatalf("list entry %s:%x, EXPECTED %s:%x", e.alg, e.digest, alg, want)
	}

	logSet := replay(t, dir+"sample-binary_bios_measurements-pcrs-8-9")
	if got, _ := Aggregate(pcr.SHA256, logSet); !bytes.Equal(got, want) {
		t.Errorf("sha256 aggregate from the log = %x, want %x", got, want)
	}
	checkRule(t, e, logSet, RulePCR0to9)

	tpmSHA1 := parseIndexed(t, dir+"sample-tpm-2.0-pcrs-8-9", pcr.SHA1)
	got, _ := Aggregate(pcr.SHA1, tpmSHA1)
	fromLog, _ := Aggregate(pcr.SHA1, logSet)
	if !bytes.Equal(got, fromLog) {
		t.Errorf("sha1 aggregate: TPM PCRs %x, replayed log %x", got, fromLog)
	}
	// evmctl on the same PCRs, in its "PCR-NN: hex" file format.
	var buf bytes.Buffer
	for _, i := range tpmSHA1.Indexes(pcr.SHA1) {
		v, _ := tpmSHA1.Get(pcr.SHA1, i)
		buf.WriteString("PCR-" + strconv.Itoa(100 + i)[1:] + ": " + hex.EncodeToString(v) + "\n")
	}
	f := filepath.Join(t.TempDir(), "pcrs-sha1.txt")
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if ev := evmctlAggregate(t, "--pcrs", "sha1,"+f); !bytes.Equal(ev["sha1"], got) {
		t.Errorf("sha1 aggregate %x, evmctl %x", got, ev["sha1"])
	}
	t.Logf("sha1:%x", got)
}

// TestIMAEvmUtilsPre58: the unreferenced older ima-evm-utils pair; its
// boot_aggregate (sha256:f1b4c7c9...) is the pre-5.8 rule, H(PCR0..7).
func TestIMAEvmUtilsPre58(t *testing.T) {
	const dir = "public/ima-evm-utils/tests/"
	e := firstASCII(t, dir+"test_ascii_runtime_measurements")
	set := replay(t, dir+"test_binary_bios_measurements")
	checkRule(t, e, set, RulePre58)
	if d, _ := Aggregate(pcr.SHA256, set); bytes.Equal(d, e.digest) {
		t.Error("the PCR0-9 rule also matches")
	}
}

// TestIMAVerify: ima-verify's VM captures, tpm2_pcrread PCRs next to the
// lists (sha1 list: PCR0-7 rule, sha256 list: PCR0-9 rule), and the older
// capture whose firmware log replays to the same aggregate. The lists are
// large (0.4-0.8 MB each), so they stay in the extra corpus; the same rules
// are held against real kernels and TPMs by TestRealKernel, TestIMAEvmUtils*
// and the module's realkernel_test.go.
func TestIMAVerify(t *testing.T) {
	dir := "public/ima-verify/"
	checkRule(t, firstBinary(t, extra(t, dir+"testfiles_vm/binary_runtime_measurements_sha1"), 20),
		parsePCRRead(t, dir+"testfiles_vm/pcrs_sha1"), RuleSHA1)
	checkRule(t, firstBinary(t, extra(t, dir+"testfiles_vm/binary_runtime_measurements_sha256"), 32),
		parsePCRRead(t, dir+"testfiles_vm/pcrs_sha256"), RulePCR0to9)

	old := dir + "at-e5460c7/testfiles_vm/"
	e := firstASCII(t, extra(t, old+"ascii_runtime_measurements_sha256"))
	if b := firstBinary(t, extra(t, old+"binary_runtime_measurements_sha256"), 32); !bytes.Equal(b.digest, e.digest) {
		t.Errorf("binary and ascii lists disagree: %x %x", b.digest, e.digest)
	}
	checkRule(t, e, parsePCRRead(t, old+"pcrs"), RulePCR0to9)
	checkRule(t, e, replay(t, old+"binary_bios_measurements"), RulePCR0to9)
}

// TestRealKernel: every real-kernel capture. The first list entry (written
// by Linux 6.1 with ima_hash=sha256 on a TPM with banks sha1,sha256) must be
// reproduced from the PCRs read at capture, from the replayed firmware log,
// and by Kernel with the TPM's bank order; evmctl ima_boot_aggregate on the
// PCR files must print what Compute gives.
func TestRealKernel(t *testing.T) {
	// The five captures with ima_hash=sha256 on sha1+sha256 TPMs (or none);
	// realkernel_test.go at the module root runs every capture.
	for _, name := range []string{"a-ima-ng", "d-no-tpm", "g-violations", "h-ima-buf", "l-uefi"} {
		d := fixture(t, "realkernel/"+name)
		rel := "realkernel/" + name + "/"
		t.Run(name, func(t *testing.T) {
			e := firstASCII(t, rel+"ascii_runtime_measurements")
			if _, err := os.Stat(filepath.Join(d, "pcrs-sha256.txt")); err != nil {
				// No TPM: TPM-bypass aggregate.
				if r, err := CheckNoTPM(e.name, e.alg, e.digest); err != nil || r != RuleNoTPM {
					t.Errorf("CheckNoTPM = %v, %v", r, err)
				}
				if alg, z, _ := NoTPM("sha256"); alg != e.alg || !bytes.Equal(z, e.digest) {
					t.Errorf("NoTPM = %s:%x, entry %s:%x", alg, z, e.alg, e.digest)
				}
				// The TPM PCRs of another capture do not explain it.
				other := make(pcr.Set)
				parseEvmctlPCRs(t, "realkernel/a-ima-ng/pcrs-sha256.txt", pcr.SHA256, other)
				var me *MismatchError
				if _, err := Check(e.name, e.alg, e.digest, other); !errors.As(err, &me) {
					t.Errorf("Check of a zero aggregate against TPM PCRs: %v", err)
				}
				return
			}
			set := make(pcr.Set)
			parseEvmctlPCRs(t, rel+"pcrs-sha1.txt", pcr.SHA1, set)
			parseEvmctlPCRs(t, rel+"pcrs-sha256.txt", pcr.SHA256, set)
			checkRule(t, e, set, RulePCR0to9)
			checkRule(t, e, replay(t, rel+"binary_bios_measurements"), RulePCR0to9)
			if r, err := CheckNoTPM(e.name, e.alg, e.digest); err == nil {
				t.Errorf("CheckNoTPM accepted a TPM aggregate: %v", r)
			}

			banks := capturedBanks(t, rel+"capture-info.txt")
			if alg, d, ok := Kernel(banks, "sha256", set); !ok || alg != e.alg || !bytes.Equal(d, e.digest) {
				t.Errorf("Kernel(%v, sha256) = %s:%x, entry %s:%x", banks, alg, d, e.alg, e.digest)
			}

			ev := evmctlAggregate(t, "--pcrs", "sha1,"+filepath.Join(d, "pcrs-sha1.txt"),
				"--pcrs", "sha256,"+filepath.Join(d, "pcrs-sha256.txt"))
			got := Compute(set)
			for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
				if !bytes.Equal(got[b], ev[b.String()]) {
					t.Errorf("%s: Compute %x, evmctl %x", b, got[b], ev[b.String()])
				}
			}
			if len(got) != len(ev) {
				t.Errorf("Compute gave %d banks, evmctl %d", len(got), len(ev))
			}
		})
	}
}

func capturedBanks(t testing.TB, rel string) []pcr.Bank {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, rel)), "\n") {
		if v, ok := strings.CutPrefix(line, "pcr_banks="); ok {
			var out []pcr.Bank
			for _, n := range strings.Split(v, ",") {
				b, err := pcr.ParseBank(n)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b)
			}
			return out
		}
	}
	t.Fatalf("%s: no pcr_banks", rel)
	return nil
}

// TestNoTPMLists: lists from boots without TPM carry all-zero aggregates
// (rust-keylime's 826-entry list, ima_hash=sha1; keylime-tests' sha256 list).
func TestNoTPMLists(t *testing.T) {
	for _, rel := range []string{
		"public/rust-keylime/keylime-agent/test-data/ima/ascii_runtime_measurements",
		"public/keylime-tests/functional/keylime-policy-commands/ima_log.txt",
	} {
		e := firstASCII(t, rel)
		if r, err := CheckNoTPM(e.name, e.alg, e.digest); err != nil || r != RuleNoTPM {
			t.Errorf("%s: CheckNoTPM = %v, %v", rel, r, err)
		}
	}
	// A non-zero digest, or a zero one of the wrong size, is not TPM-bypass.
	var me *MismatchError
	if _, err := CheckNoTPM(Name, "sha256", make([]byte, 20)); !errors.As(err, &me) {
		t.Errorf("20 zero bytes as sha256: %v", err)
	}
	if _, err := CheckNoTPM(Name, "sha1", append(make([]byte, 19), 1)); !errors.As(err, &me) {
		t.Errorf("non-zero: %v", err)
	}
	if r, err := CheckNoTPM(NameLate, "", make([]byte, 20)); err != nil || r != RuleNoTPM {
		t.Errorf("legacy d zeros: %v %v", r, err)
	}
}

// TestEvmctlLegacyLog: evmctl 1.4 replays TPM 1.2 (SHA-1 format) logs itself
// (`evmctl ima_boot_aggregate LOG`); its sha1 aggregate must equal ours from
// eventlog.Replay. short_no_action_eventlog is left out: it only holds a
// StartupLocality event, which evmctl ignores (PCR 0 starts at 00..03). The
// HP logs are skipped at run time: evmctl 1.4 stops at their first event with
// zero-length data and prints a partial aggregate.
func TestEvmctlLegacyLog(t *testing.T) {
	for _, rel := range []string{
		"public/fwupd/plugins/tpm-eventlog/tests/binary_bios_measurements-v1",
		"public/tpm2-tools/test/integration/fixtures/event-uefi-sha1-log.bin",
		"public/go-attestation/attest/testdata/ebs_event_missing_eventlog",
		"extra:public/tpm_futurepcr/tests/fixtures/ACTUAL_SYSTEMS/HP_Compaq_TPM1.2_UEFI_NonSB_Windows.log",
		"extra:public/tpm_futurepcr/tests/fixtures/ACTUAL_SYSTEMS/HP_Compaq_TPM1.2_UEFI_SB_Windows.log",
		"extra:public/tpm_futurepcr/tests/fixtures/ACTUAL_SYSTEMS/HP_ProLiant_TPM1.2_BIOS_Linux.log",
	} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			if r, ok := strings.CutPrefix(rel, "extra:"); ok {
				rel = extra(t, r)
			}
			ev := evmctlAggregate(t, fixture(t, rel))
			got, ok := Aggregate(pcr.SHA1, replay(t, rel))
			if !ok || !bytes.Equal(got, ev["sha1"]) {
				t.Errorf("sha1 aggregate %x, evmctl %x", got, ev["sha1"])
			}
		})
	}
	// Logs embedded in go-attestation dump JSON (Log.Raw): a TPM 1.2 Linux
	// machine and a Windows GCE VM. The aggregate from the dump's TPM PCRs
	// must equal both ours from the log and evmctl's.
	for _, rel := range []string{
		"public/go-eventlog/testdata/legacydata/linux_tpm12.json",
		"extra:public/go-attestation/attest/testdata/windows_gcp_shielded_vm.json",
	} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			if r, ok := strings.CutPrefix(rel, "extra:"); ok {
				rel = extra(t, r)
			}
			var d struct {
				Log struct {
					Raw  []byte
					PCRs []struct {
						Index  int
						Digest []byte
					}
				}
			}
			if err := json.Unmarshal(readFile(t, rel), &d); err != nil {
				t.Fatal(err)
			}
			tpm := make(pcr.Set)
			for _, p := range d.Log.PCRs {
				tpm.Put(pcr.SHA1, p.Index, p.Digest)
			}
			want, _ := Aggregate(pcr.SHA1, tpm)
			l, err := eventlog.ReadLog(bytes.NewReader(d.Log.Raw))
			if err != nil {
				t.Fatal(err)
			}
			s, _, err := l.Replay()
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := Aggregate(pcr.SHA1, s); !bytes.Equal(got, want) {
				t.Errorf("from the log %x, from the TPM PCRs %x", got, want)
			}
			f := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(f, d.Log.Raw, 0o644); err != nil {
				t.Fatal(err)
			}
			if ev := evmctlAggregate(t, f); !bytes.Equal(ev["sha1"], want) {
				t.Errorf("evmctl %x, from the TPM PCRs %x", ev["sha1"], want)
			}
		})
	}
}

// TestChoose follows the bank walk of ima-spec.md §6.2.
func TestChoose(t *testing.T) {
	const (
		s1   = pcr.SHA1
		s256 = pcr.SHA256
		s384 = pcr.SHA384
		s512 = pcr.SHA512
		sm3  = pcr.SM3256
	)
	for _, tc := range []struct {
		banks []pcr.Bank
		hash  string
		want  pcr.Bank
		ok    bool
	}{
		{[]pcr.Bank{s1, s256}, "sha256", s256, true},
		{[]pcr.Bank{s1, s256}, "sha1", s1, true},
		{[]pcr.Bank{s1, s256}, "sha512", s256, true}, // §6.2: sha512 without a sha512 bank → sha256
		{[]pcr.Bank{s256, s1}, "md5", s256, true},
		{[]pcr.Bank{s1}, "sha256", s1, true}, // TPM 1.2
		{[]pcr.Bank{s1, s384}, "sha512", s1, true},
		{[]pcr.Bank{s384}, "sha256", 0, false},
		{[]pcr.Bank{s384, s512}, "sha512", s512, true},
		{[]pcr.Bank{s1, sm3}, "sm3", sm3, true},
		{[]pcr.Bank{0x0027, s1}, "sha256", s1, true},
		{nil, "sha256", 0, false},
	} {
		got, ok := Choose(tc.banks, tc.hash)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Choose(%v, %s) = %v %v, want %v %v", tc.banks, tc.hash, got, ok, tc.want, tc.ok)
		}
	}
}

// TestKernel checks the d-ng and legacy d values on one PCR set, against
// hashes computed directly with the bank hash.
func TestKernel(t *testing.T) {
	set := make(pcr.Set)
	for i := range 24 {
		set.Put(pcr.SHA1, i, bytes.Repeat([]byte{byte(i + 1)}, 20))
		set.Put(pcr.SHA256, i, bytes.Repeat([]byte{byte(i + 1)}, 32))
	}
	h := func(b pcr.Bank, n int) []byte {
		x := b.New()
		for i := range n {
			v, _ := set.Get(b, i)
			x.Write(v)
		}
		return x.Sum(nil)
	}
	for _, tc := range []struct {
		banks  []pcr.Bank
		hash   string
		alg    string
		digest []byte
		legacy []byte
	}{
		{[]pcr.Bank{pcr.SHA1, pcr.SHA256}, "sha256", "sha256", h(pcr.SHA256, 10), h(pcr.SHA1, 8)},
		{[]pcr.Bank{pcr.SHA1, pcr.SHA256}, "sha1", "sha1", h(pcr.SHA1, 8), h(pcr.SHA1, 8)},
		{[]pcr.Bank{pcr.SHA256}, "sha256", "sha256", h(pcr.SHA256, 10), make([]byte, 20)},
		{[]pcr.Bank{pcr.SHA384}, "sha512", "sha512", make([]byte, 64), make([]byte, 20)},
		{[]pcr.Bank{pcr.SHA384}, "md5", "md5", make([]byte, 16), make([]byte, 20)},
	} {
		alg, d, ok := Kernel(tc.banks, tc.hash, set)
		if !ok || alg != tc.alg || !bytes.Equal(d, tc.digest) {
			t.Errorf("Kernel(%v, %s) = %s:%x, want %s:%x", tc.banks, tc.hash, alg, d, tc.alg, tc.digest)
		}
		if l := KernelLegacy(tc.banks, tc.hash, set); !bytes.Equal(l, tc.legacy) {
			t.Errorf("KernelLegacy(%v, %s) = %x, want %x", tc.banks, tc.hash, l, tc.legacy)
		}
	}
	if l := LegacySHA1(set); !bytes.Equal(l, h(pcr.SHA1, 8)) {
		t.Errorf("LegacySHA1 = %x", l)
	}
	// Absent PCRs count as zeros (an event-log replay lists only PCRs with
	// events).
	sparse := make(pcr.Set)
	v0, _ := set.Get(pcr.SHA256, 0)
	sparse.Put(pcr.SHA256, 0, v0)
	x := pcr.SHA256.New()
	x.Write(v0)
	x.Write(make([]byte, 32*9))
	if d, ok := Aggregate(pcr.SHA256, sparse); !ok || !bytes.Equal(d, x.Sum(nil)) {
		t.Errorf("sparse aggregate %x", d)
	}
}

// TestCheckErrors: errors are typed; a mismatch lists every candidate.
func TestCheckErrors(t *testing.T) {
	set := make(pcr.Set)
	set.Put(pcr.SHA256, 0, make([]byte, 32))
	if _, err := Check("/init", "sha256", make([]byte, 32), set); !errors.Is(err, ErrNotBootAggregate) {
		t.Errorf("name: %v", err)
	}
	if _, err := Check(Name, "sha1", make([]byte, 20), set); !errors.Is(err, ErrNoBank) {
		t.Errorf("missing bank: %v", err)
	}
	var me *MismatchError
	_, err := Check(Name, "sha256", make([]byte, 32), set)
	if !errors.As(err, &me) || len(me.Want) != 2 || me.Want[0].Rule != RulePCR0to9 || me.Want[1].Rule != RulePre58 {
		t.Fatalf("mismatch: %v", err)
	}
	t.Log(err)
	// Legacy d on a TPM without a sha1 bank: zeros.
	if r, err := Check(Name, "", make([]byte, 20), set); err != nil || r != RuleNoSHA1Bank {
		t.Errorf("legacy zeros without sha1: %v %v", r, err)
	}
}
