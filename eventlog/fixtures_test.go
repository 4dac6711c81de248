package eventlog

// Loading the fixture corpus (../shared/fixtures) and the values asserted
// by others about it. Every expected value here comes from outside imago: an
// upstream test (EXPECTED.json), a PCR read from the TPM at capture
// (realkernel pcrs-*.txt, sample-tpm-2.0-pcrs-8-9, tpm_futurepcr pcr-sha256,
// ima-verify pcrs, go-attestation/go-eventlog dump JSON) or another
// implementation (tpm2-tools golden YAML).

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
)

// tree is where the corpus is read from: the repository's pinned subset
// (testdata/, always there) or the whole corpus in ../shared (an extra
// corpus: testenv reports it when absent). Both hold public/<source>/...
// and realkernel/<capture>/... under the same names.
type tree struct {
	dir  string
	full bool
}

func subsetTree(t testing.TB) tree { return tree{dir: testfixture.Dir(t)} }
func fullTree(t testing.TB) tree   { return tree{dir: testfixture.SharedDir(t), full: true} }

func (tr tree) path(name string) string { return filepath.Join(tr.dir, filepath.FromSlash(name)) }

func (tr tree) read(t testing.TB, name string) []byte { return readFile(t, tr.path(name)) }

func (tr tree) has(name string) bool {
	_, err := os.Stat(tr.path(name))
	return err == nil
}

// readPublic reads public/<name> of the repository's subset.
func readPublic(t testing.TB, name string) []byte {
	t.Helper()
	return testfixture.Read(t, "public/"+name)
}

// subsetLogs are the TCG logs of the repository's subset of the public
// corpus (testdata/public): one or more per replay rule of MANIFEST.md
// (StartupLocality, H-CRTM, PCR -1, filler, sha1/sha256/sha384/sha512 and
// sm3 banks, SHA-1 legacy format, TDX CCEL), each with values asserted by
// others.
var subsetLogs = []string{
	"go-attestation/attest/testdata/short_no_action_eventlog",
	"go-attestation/attest/testdata/sb_cert_eventlog",
	"go-attestation/attest/testdata/option_rom_eventlog",
	"go-attestation/attest/testdata/ebs_event_missing_eventlog",
	"tpm2-tss/test/data/fapi/eventlog/binary_measurements_hcrtm.bin",
	"tpm2-tools/test/integration/fixtures/event.bin",
	"tpm2-tools/test/integration/fixtures/specid-vendordata.bin",
	"tpm2-tools/test/integration/fixtures/event-uefivar.bin",
	"tpm2-tools/test/integration/fixtures/event-arch-linux.bin",
	"go-eventlog/testdata/eventlogs/ccel/cos-113-intel-tdx.bin",
	"ima-evm-utils/tests/sample-binary_bios_measurements-pcrs-8-9",
	"ima-evm-utils/tests/test_binary_bios_measurements",
	"ima-verify/at-e5460c7/testfiles_vm/binary_bios_measurements",
	"tpm_futurepcr/tests/fixtures/QEMU/tpm_binary_measurements",
	"fwupd/plugins/tpm-eventlog/tests/binary_bios_measurements-v1",
}

// want is a set of expected PCR values with the name of who asserts them.
type want struct {
	source string
	pcrs   pcr.Set
}

// logCase is one TCG log of the corpus.
type logCase struct {
	name string // path under fixtures/
	raw  []byte
	// wants are independent expected values; every PCR listed must equal the
	// replay (PCRs absent from the replay, i.e. without events, must equal
	// their reset value unless listed in notInLog).
	wants []want
	// notInLog lists PCR indexes the expected values carry that the firmware
	// log cannot reproduce (PCR 10 = IMA).
	notInLog []int
	// rtmr: a TDX CCEL log, expected RTMR0-3 are sha384 "PCR" 1-4.
	rtmr bool
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(strings.ToLower(s)), "0x"))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectedJSON reads public/<source>/EXPECTED.json of tr.
func expectedJSON(t testing.TB, tr tree, source string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(tr.read(t, "public/"+source+"/EXPECTED.json"), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// setFromMap converts {"sha1": {"0": "hex"}} (EXPECTED.json expected_pcrs).
func setFromMap(t testing.TB, m map[string]map[string]string) pcr.Set {
	t.Helper()
	s := make(pcr.Set)
	for bn, vals := range m {
		b, err := pcr.ParseBank(bn)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range vals {
			i, err := strconv.Atoi(k)
			if err != nil {
				t.Fatal(err)
			}
			s.Put(b, i, mustHex(t, v))
		}
	}
	return s
}

// parseYAMLPCRs reads the `pcrs:` section that tpm2_eventlog prints last, and
// tpm2_pcrread's output (same shape: "  sha1:" then "    0 : 0xHEX").
func parseYAMLPCRs(t testing.TB, data []byte, needHeader bool) pcr.Set {
	t.Helper()
	s := make(pcr.Set)
	in := !needHeader
	var bank pcr.Bank
	haveBank := false
	re := regexp.MustCompile(`^\s+(\d+)\s*:\s*0x([0-9a-fA-F]+)\s*$`)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !in {
			in = line == "pcrs:"
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil && haveBank {
			i, _ := strconv.Atoi(m[1])
			s.Put(bank, i, mustHex(t, m[2]))
			continue
		}
		if f := strings.TrimSuffix(strings.TrimSpace(line), ":"); strings.HasPrefix(line, "  ") && !strings.Contains(f, " ") {
			b, err := pcr.ParseBank(f)
			if err == nil {
				bank, haveBank = b, true
			}
		}
	}
	return s
}

// parseEvmctlPCRs reads "PCR-NN: HEX" lines (realkernel pcrs-<alg>.txt).
func parseEvmctlPCRs(t testing.TB, data []byte, b pcr.Bank) pcr.Set {
	t.Helper()
	s := make(pcr.Set)
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(k, "PCR-") {
			continue
		}
		i, err := strconv.Atoi(strings.TrimPrefix(k, "PCR-"))
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		s.Put(b, i, mustHex(t, v))
	}
	return s
}

// parseIndexedLines reads "N: hex" lines (tsspcrread) or, with implicit,
// one hex value per line for PCR 0, 1, ... (tpm_futurepcr pcr-sha256).
func parseIndexedLines(t testing.TB, data []byte, b pcr.Bank, implicit bool) pcr.Set {
	t.Helper()
	s := make(pcr.Set)
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if implicit {
			s.Put(b, n, mustHex(t, line))
			n++
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		i, err := strconv.Atoi(k)
		if !ok || err != nil {
			continue // header line
		}
		s.Put(b, i, mustHex(t, v))
	}
	return s
}

// dumpJSON reads a go-attestation "Dump" JSON: Log.Raw and Log.PCRs
// (crypto.Hash DigestAlg: 3 = SHA-1, 5 = SHA-256).
func dumpJSON(t testing.TB, path string) ([]byte, pcr.Set) {
	t.Helper()
	var d struct {
		Log struct {
			Raw  []byte
			PCRs []struct {
				Index     int
				Digest    []byte
				DigestAlg int
			}
		}
	}
	if err := json.Unmarshal(readFile(t, path), &d); err != nil {
		t.Fatal(err)
	}
	s := make(pcr.Set)
	for _, p := range d.Log.PCRs {
		b := map[int]pcr.Bank{3: pcr.SHA1, 5: pcr.SHA256}[p.DigestAlg]
		if b == 0 {
			t.Fatalf("unknown DigestAlg %d", p.DigestAlg)
		}
		s.Put(b, p.Index, p.Digest)
	}
	return d.Log.Raw, s
}

// corpusLogs returns every TCG log of tr with the expected values asserted
// for it. In the subset, values for logs left out of it are passed over;
// in the full corpus every value must find its log.
func corpusLogs(t testing.TB, tr tree) []logCase {
	t.Helper()
	var cases []logCase
	add := func(name string, c logCase) {
		c.name = name
		if c.raw == nil {
			c.raw = tr.read(t, name)
		}
		cases = append(cases, c)
	}

	var names []string
	if tr.full {
		// Every TCG log the corpus lists in computed_replay.json (only the
		// paths are used, never its values).
		var cr struct {
			Logs map[string]json.RawMessage `json:"tcg_event_logs"`
		}
		if err := json.Unmarshal(tr.read(t, "public/computed_replay.json"), &cr); err != nil {
			t.Fatal(err)
		}
		for n := range cr.Logs {
			names = append(names, n)
		}
		// Byte-identical copies and CCEL logs not listed there.
		names = append(names,
			"tpm2-tss/test/data/fapi/eventlog/event.bin",
			"tpm2-tss/test/data/fapi/eventlog/event-uefiaction.bin",
			"tpm2-tss/test/data/fapi/eventlog/event-uefiservices.bin",
			"tpm2-tss/test/data/fapi/eventlog/event-uefivar.bin",
			"tpm2-tss/test/data/fapi/eventlog/specid-vendordata.bin",
			"go-eventlog/testdata/eventlogs/ccel/CCEL_unpadded.data.bin",
			"go-eventlog/testdata/eventlogs/ccel/cos-113-intel-tdx.bin",
			"go-eventlog/testdata/eventlogs/ccel/cos-113-intel-tdx-dupe-separator.bin",
			"go-eventlog/testdata/eventlogs/ccel/cos-113-intel-tdx-dupe-separator-unpadded.bin",
			"go-eventlog/testdata/eventlogs/ccel/event_log.bin",
		)
	} else {
		names = append(names, subsetLogs...)
	}
	sort.Strings(names)
	for _, n := range names {
		add("public/"+n, logCase{})
	}
	byName := map[string]*logCase{}
	for i := range cases {
		byName[strings.TrimPrefix(cases[i].name, "public/")] = &cases[i]
	}
	// get returns the case of a log named by an expectation; nil for a log
	// the subset leaves out.
	get := func(n string) *logCase {
		c := byName[n]
		if c == nil && tr.full {
			t.Fatalf("fixture %s not in the corpus list", n)
		}
		return c
	}
	pub := filepath.Join(tr.dir, "public")

	// EXPECTED.json expected_pcrs / expected_pcr0.
	for _, src := range []struct{ source, dir string }{
		{"go-attestation", "go-attestation/attest/testdata/"},
		{"tpm2-tss", "tpm2-tss/test/data/fapi/eventlog/"},
		{"fwupd", "fwupd/plugins/tpm-eventlog/tests/"},
		{"tpm_futurepcr", ""},
	} {
		for key, raw := range expectedJSON(t, tr, src.source) {
			var v struct {
				PCRs map[string]map[string]string `json:"expected_pcrs"`
				PCR0 map[string]string            `json:"expected_pcr0"`
			}
			if json.Unmarshal(raw, &v) != nil || (v.PCRs == nil && v.PCR0 == nil) {
				continue
			}
			name := src.dir + key
			if src.source == "tpm_futurepcr" {
				name = "tpm_futurepcr/" + strings.Fields(key)[0]
			}
			if key == "ebs_event_missing_eventlog" {
				continue // firmware bug: needs the injected events, see TestEBSMissing
			}
			s := setFromMap(t, v.PCRs)
			for bn, h := range v.PCR0 {
				b, _ := pcr.ParseBank(bn)
				s.Put(b, 0, mustHex(t, h))
			}
			if c := get(name); c != nil {
				c.wants = append(c.wants, want{src.source + "/EXPECTED.json " + key, s})
			}
		}
	}
	get("go-attestation/attest/testdata/sb_cert_eventlog").notInLog = []int{10}

	// TPM reads next to logs (all three are in the subset).
	c := get("ima-evm-utils/tests/sample-binary_bios_measurements-pcrs-8-9")
	c.wants = append(c.wants, want{"sample-tpm-2.0-pcrs-8-9 (tsspcrread sha1)",
		parseIndexedLines(t, readFile(t, filepath.Join(pub, "ima-evm-utils/tests/sample-tpm-2.0-pcrs-8-9")), pcr.SHA1, false)})
	c.notInLog = []int{10}
	c = get("ima-verify/at-e5460c7/testfiles_vm/binary_bios_measurements")
	c.wants = append(c.wants, want{"ima-verify pcrs (tpm2_pcrread sha256)",
		keepRange(parseYAMLPCRs(t, readFile(t, filepath.Join(pub, "ima-verify/at-e5460c7/testfiles_vm/pcrs")), false), 0, 9)})
	c = get("tpm_futurepcr/tests/fixtures/QEMU/tpm_binary_measurements")
	c.wants = append(c.wants, want{"tpm_futurepcr pcr-sha256 (TPM read)",
		parseIndexedLines(t, readFile(t, filepath.Join(pub, "tpm_futurepcr/tests/fixtures/QEMU/pcr-sha256")), pcr.SHA256, true)})
	c.notInLog = []int{10}

	// tpm2-tools golden YAML (a second implementation; its values for these
	// logs are not affected by the StartupLocality / H-CRTM / SP800-155
	// errors of tpm2-tools).
	ttDir := "tpm2-tools/test/integration/fixtures/"
	for _, f := range []string{"event-arch-linux.bin", "event-bootorder.bin", "event-gce-ubuntu-2104-log.bin",
		"event-moklisttrusted.bin", "event-postcode.bin", "event-sd-boot-fedora37.bin", "event-uefi-sha1-log.bin",
		"event-uefiaction.bin", "event-uefiservices.bin", "event-uefivar.bin"} {
		c := get(ttDir + f)
		if c == nil {
			continue
		}
		y := parseYAMLPCRs(t, readFile(t, filepath.Join(pub, ttDir, "event-pretty", f+".yaml")), true)
		c.wants = append(c.wants, want{"tpm2-tools event-pretty/" + f + ".yaml pcrs:", y})
	}
	for _, f := range []string{"event.bin", "specid-vendordata.bin"} {
		c := get(ttDir + f)
		if c == nil {
			continue
		}
		y := parseYAMLPCRs(t, readFile(t, filepath.Join(pub, ttDir, f+".yaml")), true)
		c.wants = append(c.wants, want{"tpm2-tools " + f + ".yaml pcrs:", y})
	}

	// TDX CCEL: RTMR i = MR index i+1.
	var ge map[string]json.RawMessage = expectedJSON(t, tr, "go-eventlog")
	for key, raw := range ge {
		var v struct {
			RTMR map[string]string `json:"expected_rtmr"`
		}
		if json.Unmarshal(raw, &v) != nil || v.RTMR == nil {
			continue
		}
		s := make(pcr.Set)
		for k, h := range v.RTMR {
			i, _ := strconv.Atoi(strings.TrimPrefix(k, "RTMR"))
			s.Put(pcr.SHA384, i+1, mustHex(t, h))
		}
		c := get("go-eventlog/testdata/eventlogs/ccel/" + key)
		if c == nil {
			continue
		}
		c.wants = append(c.wants, want{"go-eventlog/EXPECTED.json " + key + " expected_rtmr (as MR index i+1)", s})
		c.rtmr = true
	}

	// Logs embedded in dump JSON, with the machine's PCRs.
	for _, f := range []string{"go-attestation/attest/testdata/windows_gcp_shielded_vm.json",
		"go-eventlog/testdata/legacydata/linux_tpm12.json"} {
		if !tr.full && !tr.has("public/"+f) {
			continue
		}
		raw, s := dumpJSON(t, filepath.Join(pub, f))
		add("public/"+f+"#Log.Raw", logCase{raw: raw, wants: []want{{f + " Log.PCRs", s}}, notInLog: []int{10}})
	}

	// Real-kernel captures: PCR0-9 read from the TPM right after boot.
	rk := filepath.Join(tr.dir, "realkernel")
	dirs, _ := filepath.Glob(filepath.Join(rk, "*", "binary_bios_measurements"))
	for _, p := range dirs {
		dir := filepath.Dir(p)
		var ws []want
		for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
			f := filepath.Join(dir, "pcrs-"+b.String()+".txt")
			if _, err := os.Stat(f); err == nil {
				ws = append(ws, want{"realkernel " + filepath.Base(dir) + "/pcrs-" + b.String() + ".txt (TPM)",
					keepRange(parseEvmctlPCRs(t, readFile(t, f), b), 0, 9)})
			}
		}
		add("realkernel/"+filepath.Base(dir)+"/binary_bios_measurements", logCase{wants: ws})
	}
	return cases
}

func keepRange(s pcr.Set, lo, hi int) pcr.Set {
	out := make(pcr.Set)
	for b, m := range s {
		for i, v := range m {
			if i >= lo && i <= hi {
				out.Put(b, i, v)
			}
		}
	}
	return out
}

// resetValue is a PCR's value after TPM2_Startup(CLEAR) with no extends.
func resetValue(b pcr.Bank, i int) []byte {
	v := make([]byte, b.Size())
	if i >= 17 && i <= 22 {
		for k := range v {
			v[k] = 0xff
		}
	}
	return v
}

// compareWant checks got against w; it returns the number of values compared.
func compareWant(t *testing.T, got pcr.Set, w want, notInLog []int) int {
	t.Helper()
	n := 0
	for _, b := range w.pcrs.Banks() {
		if _, ok := got[b]; !ok {
			t.Errorf("%s: replay has no %s bank", w.source, b)
			continue
		}
		for _, i := range w.pcrs.Indexes(b) {
			wv := w.pcrs[b][i]
			gv, ok := got.Get(b, i)
			if !ok {
				// No event for this PCR: it must hold its reset value,
				// unless the expected values carry a PCR the log cannot
				// reproduce (IMA's PCR 10).
				if !bytes.Equal(wv, resetValue(b, i)) && !containsInt(notInLog, i) {
					t.Errorf("%s: %s PCR %d has no events in the log but expected %x", w.source, b, i, wv)
				}
				continue
			}
			if !bytes.Equal(gv, wv) {
				t.Errorf("%s: %s PCR %d = %x, want %x", w.source, b, i, gv, wv)
			}
			n++
		}
	}
	return n
}

func containsInt(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func (c logCase) String() string { return fmt.Sprintf("%s (%d bytes)", c.name, len(c.raw)) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
