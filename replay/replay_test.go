package replay

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/genlist"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
)

// readFixture reads testdata/<rel> at the module root (a missing file
// fails).
func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	return testfixture.Read(t, rel)
}

// opener returns a re-openable entry source over a list in memory, binary
// or ascii (ima.ListReader sniffs which).
func opener(data []byte, digestSize int) func() iter.Seq2[*ima.Entry, error] {
	return func() iter.Seq2[*ima.Entry, error] {
		return ima.NewListReader(bytes.NewReader(data), ima.ReaderOptions{DigestSize: digestSize}).All()
	}
}

func pcrFile(t testing.TB, b pcr.Bank, rel string) pcr.Set {
	t.Helper()
	s, err := pcr.ParseSource(b, readFixture(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRealKernel replays the real-kernel captures, binary and ascii, against
// the PCRs the TPM reported right after the list was read (pcrs-*.txt).
func TestRealKernel(t *testing.T) {
	for _, dir := range []string{"a-ima-ng", "g-violations", "h-ima-buf", "l-uefi"} {
		for _, list := range []string{"binary_runtime_measurements", "ascii_runtime_measurements"} {
			t.Run(dir+"/"+list, func(t *testing.T) {
				base := "realkernel/" + dir + "/"
				data := readFixture(t, base+list)
				target := pcrFile(t, pcr.SHA1, base+"pcrs-sha1.txt")
				target.Merge(pcrFile(t, pcr.SHA256, base+"pcrs-sha256.txt"))
				count, _ := strconv.Atoi(strings.TrimSpace(string(readFixture(t, base+"runtime_measurements_count"))))
				viol, _ := strconv.Atoi(strings.TrimSpace(string(readFixture(t, base+"violations"))))

				rep, err := Check(opener(data, 20), target, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := rep.Err(); err != nil {
					t.Fatalf("verdict: %v", err)
				}
				if rep.Entries != count || rep.Violations != viol {
					t.Errorf("entries %d violations %d, securityfs says %d and %d", rep.Entries, rep.Violations, count, viol)
				}
				if len(rep.Checks) != 2 {
					t.Fatalf("checks %+v, want sha1 and sha256 PCR 10", rep.Checks)
				}
				for _, c := range rep.Checks {
					if c.PCR != 10 || c.Prefix != count || c.Variant != PerBank {
						t.Errorf("%+v", c)
					}
					want, _ := target.Get(c.Bank, 10)
					if got, _ := rep.PCRs.Get(c.Bank, 10); !bytes.Equal(got, want) {
						t.Errorf("%s PCR10 = %x, TPM %x", c.Bank, got, want)
					}
				}
			})
		}
	}
}

func TestViolationsWithoutRule(t *testing.T) {
	// g-violations replayed with zeros instead of 0xFF would not match:
	// make sure the 0xFF rule (§5.2) is what makes it match, by checking
	// that the last entry is a violation and the sha256 value differs from
	// a replay where the violations are dropped.
	data := readFixture(t, "realkernel/g-violations/binary_runtime_measurements")
	res, err := Replay(opener(data, 20)(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Violations != 2 {
		t.Fatalf("violations = %d", res.Violations)
	}
}

func TestPublicLists(t *testing.T) {
	tests := []struct {
		name     string
		list     string
		dsize    int
		banks    []pcr.Bank
		pcrs     string // tpm2_pcrread dump, or "" to use want
		want     map[pcr.Bank]map[int]string
		entries  int
		violated int
		extra    bool // the list is in ../shared only (0.4-0.5 MB each)
	}{
		// go-ima EXPECTED.json (TestValidator_MeasurementListAttestation_ng).
		{"go-ima/ima_ng", "public/go-ima/tests/ima_ng", 20, []pcr.Bank{pcr.SHA1}, "",
			map[pcr.Bank]map[int]string{pcr.SHA1: {10: "da7ce82c00a5526483391051f3fb736fcde208ca"}}, 254, 0, false},
		// ima-verify: each per-bank list against its own tpm2_pcrread dump.
		{"ima-verify/sha1", "public/ima-verify/testfiles_vm/binary_runtime_measurements_sha1", 20, []pcr.Bank{pcr.SHA1},
			"public/ima-verify/testfiles_vm/pcrs_sha1", nil, 3506, 0, true},
		{"ima-verify/sha256", "public/ima-verify/testfiles_vm/binary_runtime_measurements_sha256", 32, []pcr.Bank{pcr.SHA256},
			"public/ima-verify/testfiles_vm/pcrs_sha256", nil, 3524, 0, true},
		// tpm2-tss violation (legacy "ima" template); the values are
		// ima-spec.md §12.6 (0xFF extended once) and the collector's
		// computed_replay.json. (sml-ima-ng-sha1-invalidated.bin, the PCR 13
		// violation, is one byte short upstream: its data_len says 49, 48
		// bytes follow; see TestPCR13Violation.)
		{"tpm2-tss/ima-invalidated", "public/tpm2-tss/test/data/fapi/eventlog/sml-ima-sha1-invalidated.bin", 20,
			[]pcr.Bank{pcr.SHA1, pcr.SHA256}, "", map[pcr.Bank]map[int]string{
				pcr.SHA1:   {10: "bac37b84f007d0238af95af707cac8d61254870e"},
				pcr.SHA256: {10: "bba91ca85dc914b2ec3efb9e16e7267bf9193b14350d20fba8a8b406730ae30a"}}, 1, 1, false},
		{"tpm2-tss/ima-sig-invalidated", "public/tpm2-tss/test/data/fapi/eventlog/sml-ima-sig-sha256-invalidated.bin", 20,
			[]pcr.Bank{pcr.SHA1, pcr.SHA384, pcr.SHA512}, "", map[pcr.Bank]map[int]string{
				pcr.SHA1:   {10: "a0e7bc9af0a2b54147b0d595d058f15c6cc44a6d"},
				pcr.SHA384: {10: "50a7992e297f66a2ea76f63986965c5e376e19cdba998e665244f7888456a1a35153541c6f502c18b71161d892e62537"},
				pcr.SHA512: {10: "31cf1b10f23482c86ea8e1ddbf473e2f1a4c508894549cf8dddae538b1153925499bbbdc2270f55dc79b3fbbd4f8e7083efcd1da0206d1449f44ec64316bd064"}}, 2, 1, false},
		// legacy "ima" template (d || name padded to 256, §4.1).
		{"tpm2-tss/ima-sha1", "public/tpm2-tss/test/data/fapi/eventlog/sml-ima-sha1.bin", 20,
			[]pcr.Bank{pcr.SHA1, pcr.SHA256}, "", map[pcr.Bank]map[int]string{
				pcr.SHA1:   {10: "062a05a9d18d1a51775ff8162bf6964b8dd23eb4"},
				pcr.SHA256: {10: "239ba8e6f20ecfec961d771036c68f02dbeb771678b64c18cba81363e8e7139a"}}, 12, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte
			if tc.extra {
				data = testfixture.ReadExtra(t, tc.list)
			} else {
				data = readFixture(t, tc.list)
			}
			var target pcr.Set
			if tc.pcrs != "" {
				target = pcrFile(t, 0, tc.pcrs)
			} else {
				target = make(pcr.Set)
				for b, m := range tc.want {
					for i, v := range m {
						target.Put(b, i, unhex(t, v))
					}
				}
			}
			rep, err := Check(opener(data, tc.dsize), target, Options{Banks: tc.banks})
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Err(); err != nil {
				t.Fatalf("verdict: %v", err)
			}
			if rep.Entries != tc.entries || rep.Violations != tc.violated {
				t.Errorf("entries %d violations %d, want %d %d", rep.Entries, rep.Violations, tc.entries, tc.violated)
			}
			if len(rep.Checks) != len(tc.banks) {
				t.Errorf("checks: %+v", rep.Checks)
			}
			for _, c := range rep.Checks {
				if !c.Matched || c.Prefix != tc.entries {
					t.Errorf("%+v", c)
				}
			}
		})
	}
}

// bootAggregateEntry is the ima-spec.md §12.1 entry (ima-evm-utils
// sample-ascii_runtime_measurements-pcrs-8-9).
func bootAggregateEntry(t testing.TB) *ima.Entry {
	d := unhex(t, "83d19723ef3b3c05bb8ae70d86b3886c158f2408f1b71ed265886a7b79eb700e")
	var td []byte
	td = append(td, 0x28, 0, 0, 0)
	td = append(td, "sha256:\x00"...)
	td = append(td, d...)
	td = append(td, 0x0f, 0, 0, 0)
	td = append(td, "boot_aggregate\x00"...)
	return &ima.Entry{PCR: 10, Digest: unhex(t, "2e03b3fdb0014fc8bae2a07ca33ae67125b290f3"), Template: "ima-ng", Data: td}
}

func seqOf(es ...*ima.Entry) func() iter.Seq2[*ima.Entry, error] {
	return func() iter.Seq2[*ima.Entry, error] {
		return func(yield func(*ima.Entry, error) bool) {
			for _, e := range es {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}

// TestSpecPadded checks the ima-spec.md §12.1 values: per-bank sha256
// PCR 10 cf1375f3..., and d453df4f... under the padded SHA-1 scheme.
func TestSpecPadded(t *testing.T) {
	e := bootAggregateEntry(t)
	perBank := "cf1375f330b17055e0412f6aa94409958d9d66394b21cbb806da2a9b7d52ea9d"
	padded := "d453df4fc20f12ae08ec4fb1d94648d2c6df8f712806d21ec3e042abdfe3fff4"
	sha1v := "eb309918579e848d89a02072592233220772fbe9"
	for _, inline := range []bool{false, true} {
		for _, tc := range []struct {
			want    string
			variant Variant
		}{{perBank, PerBank}, {padded, PaddedSHA1}} {
			target := pcr.Set{pcr.SHA1: {10: unhex(t, sha1v)}, pcr.SHA256: {10: unhex(t, tc.want)}}
			rep, err := Check(seqOf(e), target, Options{InlinePadded: inline})
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Err(); err != nil {
				t.Fatalf("inline=%v %v: %v", inline, tc.variant, err)
			}
			if c := rep.Checks[1]; c.Bank != pcr.SHA256 || c.Variant != tc.variant || c.Prefix != 1 {
				t.Errorf("inline=%v: %+v", inline, c)
			}
			if got, _ := rep.PCRs.Get(pcr.SHA256, 10); hex.EncodeToString(got) != perBank {
				t.Errorf("per-bank value %x", got)
			}
		}
	}
}

// TestRunsAhead: gen_ima_log.py with the same seed and no violations makes
// lists that are prefixes of each other, so its expected.json for 30
// entries is the TPM of a list of 50 read 20 entries late.
func TestRunsAhead(t *testing.T) {
	dir := t.TempDir()
	long := genList(t, dir, 50, 0)
	short := genList(t, dir, 30, 0)
	rep, err := Check(opener(long.list, 20), short.pcrs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Prefix != 30 || !c.Matched {
			t.Errorf("%+v, want matched at 30", c)
		}
	}
	// and the full list matches its own expected.json at 50
	rep, err = Check(opener(long.list, 20), long.pcrs, Options{})
	if err != nil || rep.Err() != nil || rep.Checks[0].Prefix != 50 {
		t.Fatalf("%v %v %+v", err, rep.Err(), rep.Checks)
	}
}

type genOut struct {
	list, ascii []byte
	pcrs        pcr.Set // expected.json
	dir         string
}

// genList writes an n-entry list with viol violations into a folder of dir
// with internal/genlist, the module's second list writer: standard library
// only, so its PCR values do not come from the code under test (and
// TestEvmctlAgrees holds them against evmctl).
func genList(t testing.TB, dir string, n, viol int) genOut {
	t.Helper()
	out := filepath.Join(dir, strconv.Itoa(n)+"-"+strconv.Itoa(viol))
	if _, err := genlist.WriteDir(out, n, genlist.Options{Seed: 1, Violations: viol}); err != nil {
		t.Fatal(err)
	}
	var g genOut
	var err error
	g.dir = out
	if g.list, err = os.ReadFile(filepath.Join(out, "binary_runtime_measurements")); err != nil {
		t.Fatal(err)
	}
	if g.ascii, err = os.ReadFile(filepath.Join(out, "ascii_runtime_measurements")); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(out, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &g.pcrs); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGenerated(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ n, viol int }{{1, 0}, {600, 7}, {2000, 0}} {
		g := genList(t, dir, tc.n, tc.viol)
		for name, data := range map[string][]byte{"binary": g.list, "ascii": g.ascii} {
			t.Run(strconv.Itoa(tc.n)+"/"+name, func(t *testing.T) {
				rep, err := Check(opener(data, 20), g.pcrs, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := rep.Err(); err != nil {
					t.Fatal(err)
				}
				if rep.Entries != tc.n || rep.Violations != tc.viol {
					t.Errorf("entries %d violations %d", rep.Entries, rep.Violations)
				}
				for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
					got, _ := rep.PCRs.Get(b, 10)
					want, _ := g.pcrs.Get(b, 10)
					if !bytes.Equal(got, want) {
						t.Errorf("%s %x want %x", b, got, want)
					}
				}
			})
		}
	}
}

// TestTampered changes one byte of one entry's template data: the template
// check names the entry, and no prefix of the list matches the TPM.
func TestTampered(t *testing.T) {
	data := readFixture(t, "realkernel/a-ima-ng/binary_runtime_measurements")
	base := "realkernel/a-ima-ng/"
	target := pcrFile(t, pcr.SHA1, base+"pcrs-sha1.txt")
	target.Merge(pcrFile(t, pcr.SHA256, base+"pcrs-sha256.txt"))
	// Find entry 5's path in the binary and change one character.
	asc := readFixture(t, base+"ascii_runtime_measurements")
	line := strings.Split(string(asc), "\n")[5]
	path := line[strings.LastIndexByte(line, ' ')+1:]
	i := bytes.Index(data, []byte(path+"\x00"))
	if i < 0 {
		t.Fatalf("path %q not in binary list", path)
	}
	bad := bytes.Clone(data)
	bad[i+1] ^= 0x20
	rep, err := Check(opener(bad, 20), target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TemplateMismatchCount != 1 || rep.TemplateMismatches[0].Entry != 5 {
		t.Fatalf("mismatches %d %+v", rep.TemplateMismatchCount, rep.TemplateMismatches)
	}
	var me *MismatchError
	if err := rep.Err(); !errors.As(err, &me) || me.PCR != 10 {
		t.Fatalf("Err = %v", err)
	}
	for _, c := range rep.Checks {
		if c.Matched {
			t.Errorf("%+v matched", c)
		}
	}
	// The same list with the listed digest changed instead: PCRs still
	// match (they use the recomputed digest), the template check fails.
	bad = bytes.Clone(data)
	lst, _ := hex.DecodeString(strings.Fields(line)[1])
	j := bytes.Index(bad, lst)
	bad[j] ^= 1
	rep, err = Check(opener(bad, 20), target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var te *TemplateError
	if err := rep.Err(); !errors.As(err, &te) || te.First.Entry != 5 || te.Count != 1 {
		t.Fatalf("Err = %v", err)
	}
	for _, c := range rep.Checks {
		if !c.Matched {
			t.Errorf("%+v", c)
		}
	}
}

func TestNothingChecked(t *testing.T) {
	rep, err := Check(seqOf(bootAggregateEntry(t)), pcr.Set{pcr.SHA1: {11: make([]byte, 20)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rep.Err(), ErrNothingChecked) {
		t.Fatalf("Err = %v", rep.Err())
	}
}

func TestReadError(t *testing.T) {
	data := readFixture(t, "realkernel/a-ima-ng/binary_runtime_measurements")
	res, err := Replay(opener(data[:len(data)-3], 20)(), Options{})
	if err == nil || res != nil {
		t.Fatalf("res %v err %v", res, err)
	}
	if _, err := Replay(seqOf()(), Options{Banks: []pcr.Bank{0x99}}); err == nil {
		t.Fatal("unknown bank accepted")
	}
}

// TestEvmctlAgrees runs evmctl ima_measurement on generated lists, with
// the right PCRs and with a wrong PCR 10, and requires the same verdict.
func TestEvmctlAgrees(t *testing.T) {
	evmctl := testenv.Tool(t, "evmctl")
	dir := t.TempDir()
	for _, viol := range []int{0, 3} {
		g := genList(t, dir, 300, viol)
		wrong := filepath.Join(g.dir, "pcrs-sha256-wrong.txt")
		w, _ := os.ReadFile(filepath.Join(g.dir, "pcrs-sha256.txt"))
		k := bytes.Index(w, []byte("PCR-10: ")) + 8
		if w[k] == 'A' {
			w[k] = 'B'
		} else {
			w[k] = 'A'
		}
		if err := os.WriteFile(wrong, w, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, pf := range []string{"pcrs-sha256.txt", "pcrs-sha256-wrong.txt"} {
			args := []string{"ima_measurement"}
			if viol > 0 {
				args = append(args, "--ignore-violations")
			}
			args = append(args, "--pcrs", "sha1,"+filepath.Join(g.dir, "pcrs-sha1.txt"),
				"--pcrs", "sha256,"+filepath.Join(g.dir, pf), filepath.Join(g.dir, "binary_runtime_measurements"))
			cmd := exec.Command(evmctl, args...)
			out, err := cmd.CombinedOutput()
			evmOK := err == nil
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("evmctl: %v", err)
			}

			target, err := pcr.ParseSource(pcr.SHA1, readAbs(t, filepath.Join(g.dir, "pcrs-sha1.txt")))
			if err != nil {
				t.Fatal(err)
			}
			s256, err := pcr.ParseSource(pcr.SHA256, readAbs(t, filepath.Join(g.dir, pf)))
			if err != nil {
				t.Fatal(err)
			}
			target.Merge(s256)
			rep, err := Check(opener(g.list, 20), target, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if evmOK != (pf == "pcrs-sha256.txt") {
				t.Errorf("viol=%d %s: evmctl ok=%v:\n%s", viol, pf, evmOK, lastLines(out, 3))
			}
			if ours := rep.Err() == nil; ours != evmOK {
				t.Errorf("viol=%d %s: imago ok=%v (%v), evmctl ok=%v:\n%s", viol, pf, ours, rep.Err(), evmOK, lastLines(out, 3))
			}
		}
	}
}

func readAbs(t testing.TB, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lastLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestPCR13Violation replays the tpm2-tss PCR 13 violation entry, built from
// the fixture's fields (the upstream file lacks the name's final NUL): a
// violation extends 0xFF into the PCR it names (ima-spec.md §12.6 values).
func TestPCR13Violation(t *testing.T) {
	raw := readFixture(t, "public/tpm2-tss/test/data/fapi/eventlog/sml-ima-ng-sha1-invalidated.bin")
	td := append(bytes.Clone(raw[0x26:]), 0)
	e := &ima.Entry{PCR: 13, Digest: make([]byte, 20), Template: "ima-ng", Data: td}
	target := pcr.Set{
		pcr.SHA1:   {13: unhex(t, "bac37b84f007d0238af95af707cac8d61254870e")},
		pcr.SHA256: {13: unhex(t, "bba91ca85dc914b2ec3efb9e16e7267bf9193b14350d20fba8a8b406730ae30a")},
	}
	rep, err := Check(seqOf(e), target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil || rep.Violations != 1 || rep.Checks[0].PCR != 13 {
		t.Fatalf("%v %+v", err, rep)
	}
}

// paddedPCRs computes, with Python's hashlib, what a pre-5.1 kernel extends
// into the sha256 bank for a gen_ima_log.py list: the sha1 template digest
// zero-padded to 32 bytes, and for a violation 0xFF×20 then zeros
// (ima-spec.md §4.4; evmctl's padded banks with --ignore-violations).
const paddedPy = `
import hashlib, struct, sys
d = open(sys.argv[1], "rb").read()
o = 0; v = b"\0" * 32
while o < len(d):
    o += 4; dig = d[o:o+20]; o += 20
    n = struct.unpack_from("<I", d, o)[0]; o += 4 + n
    n = struct.unpack_from("<I", d, o)[0]; o += 4 + n
    ext = (b"\xff" * 20 if dig == b"\0" * 20 else dig) + b"\0" * 12
    v = hashlib.sha256(v + ext).digest()
for k in range(24):
    val = v if k == 10 else b"\0" * 32
    print("PCR-%02d: %s" % (k, val.hex().upper()))
`

// TestEvmctlPadded: a list whose sha256 PCR holds the padded SHA-1 values
// (violations included) is accepted by evmctl ("Matched SHA1 padded TPM
// digest(s)") and by Check, under the PaddedSHA1 variant.
func TestEvmctlPadded(t *testing.T) {
	evmctl := testenv.Tool(t, "evmctl")
	g := genList(t, t.TempDir(), 200, 4)
	listPath := filepath.Join(g.dir, "binary_runtime_measurements")
	out, err := exec.Command(testenv.Tool(t, "python3"), "-c", paddedPy, listPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(g.dir, "pcrs-sha256-padded.txt")
	if err := os.WriteFile(pf, out, 0o644); err != nil {
		t.Fatal(err)
	}
	eout, err := exec.Command(evmctl, "-v", "ima_measurement", "--ignore-violations",
		"--pcrs", "sha256,"+pf, listPath).CombinedOutput()
	if err != nil || !bytes.Contains(eout, []byte("Matched SHA1 padded")) {
		t.Fatalf("evmctl: %v\n%s", err, lastLines(eout, 4))
	}
	target, err := pcr.ParseEvmctl(pcr.SHA256, out)
	if err != nil {
		t.Fatal(err)
	}
	for _, inline := range []bool{false, true} {
		rep, err := Check(opener(g.list, 20), target, Options{Banks: []pcr.Bank{pcr.SHA256}, InlinePadded: inline})
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Fatal(err)
		}
		if c := rep.Checks[0]; c.Variant != PaddedSHA1 || c.Prefix != 200 || rep.Violations != 4 {
			t.Errorf("inline=%v: %+v", inline, c)
		}
		if v, _ := rep.Padded.Get(pcr.SHA256, 10); !bytes.Equal(v, c0(target)) {
			t.Errorf("padded value %x", v)
		}
	}
}

func c0(s pcr.Set) []byte { v, _ := s.Get(pcr.SHA256, 10); return v }

// referenceReplay is the plain sequential fold, written with the pcr and ima
// primitives only: the oracle for the pipelined engine.
func referenceReplay(es []*ima.Entry, banks []pcr.Bank) pcr.Set {
	out := make(pcr.Set)
	for _, e := range es {
		for _, b := range banks {
			old, ok := out.Get(b, int(e.PCR))
			if !ok {
				old = pcr.Zero(b)
			}
			d := e.TemplateDigest(b)
			if e.IsViolation() {
				d = pcr.ViolationDigest(b.Size(), true)
			}
			out.Put(b, int(e.PCR), pcr.Extend(b, old, d))
		}
	}
	return out
}

// TestEveryPrefix takes g-violations (violations included), moves every
// third entry to PCR 11 (the PCR is not hashed), and checks that a TPM read
// after any prefix k is matched at exactly k, in all five banks.
func TestEveryPrefix(t *testing.T) {
	data := readFixture(t, "realkernel/g-violations/binary_runtime_measurements")
	var es []*ima.Entry
	for e, err := range ima.NewReader(bytes.NewReader(data), ima.ReaderOptions{}).All() {
		if err != nil {
			t.Fatal(err)
		}
		if len(es)%3 == 2 {
			e.PCR = 11
		}
		es = append(es, e)
	}
	banks := pcr.Banks
	full := referenceReplay(es, banks)
	res, err := Replay(seqOf(es...)(), Options{Banks: banks})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range banks {
		for _, i := range []int{10, 11} {
			want, _ := full.Get(b, i)
			if got, _ := res.PCRs.Get(b, i); !bytes.Equal(got, want) {
				t.Fatalf("%s PCR %d: %x, reference %x", b, i, got, want)
			}
		}
	}
	for k := 1; k <= len(es); k++ {
		target := referenceReplay(es[:k], banks)
		rep, err := Check(seqOf(es...), target, Options{Banks: banks})
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Fatalf("prefix %d: %v", k, err)
		}
		for _, c := range rep.Checks {
			if c.Prefix != k || c.Variant != PerBank {
				t.Fatalf("prefix %d: %+v", k, c)
			}
		}
	}
	// A TPM whose PCR 11 is ahead of its PCR 10 matches no prefix.
	target := referenceReplay(es[:6], banks)
	later := referenceReplay(es[:12], banks)
	target[pcr.SHA256][11] = later[pcr.SHA256][11]
	rep, err := Check(seqOf(es...), target, Options{Banks: banks})
	if err != nil {
		t.Fatal(err)
	}
	var me *MismatchError
	if !errors.As(rep.Err(), &me) || me.Bank != pcr.SHA256 {
		t.Fatalf("Err = %v", rep.Err())
	}
}

// sum's doc comment: the one-shot hashes keep the hot path free of
// allocations, in every bank.
func TestSumAllocs(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 300)
	var dst [maxDigest]byte
	for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384, pcr.SHA512, pcr.SM3256} {
		if n := testing.AllocsPerRun(1, func() {
			for range 100 {
				sum(b, &dst, data)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations in 100 calls", b, n)
		}
	}
}
