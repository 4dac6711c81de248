package agent

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
)

// realkernel is the captures from a real Linux 6.1 kernel with a swtpm
// (testdata/realkernel/README.md at the module root).
const realkernel = "../testdata/realkernel"

// needCaptures fails the test if the module's captures are missing.
func needCaptures(t *testing.T) {
	t.Helper()
	testfixture.Path(t, "realkernel/a-ima-ng")
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tmpl(t *testing.T, name string) *ima.Template {
	t.Helper()
	tp, err := ima.LookupTemplate(name)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// TestBuildEntryOracle builds entries and compares their SHA-1 template
// digests and ASCII lines with lines the kernel wrote (realkernel captures,
// the linux-integrity thread quoted in ima-spec.md §12.3, §12.4) or that
// ima-spec.md computed independently (§12.5, §12.6).
func TestBuildEntryOracle(t *testing.T) {
	zero32 := make([]byte, 32)
	empty := unhex(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	agg := unhex(t, "9887dd089ee19a6517bca10580b02c1bb9aa6cd86c157b6ead8a1c0403f348d5")
	for _, tc := range []struct {
		name, tmpl string
		ev         event
		digest     string
		line       string // ASCII line, "" to skip
	}{
		{"bypass boot_aggregate (realkernel d-no-tpm)", "ima-ng",
			event{Name: "boot_aggregate", Alg: ima.HashSHA256, Digest: zero32, D: make([]byte, 20)},
			"0adefe762c149c7cec19da62f0da1297fcfbffff",
			"10 0adefe762c149c7cec19da62f0da1297fcfbffff ima-ng sha256:0000000000000000000000000000000000000000000000000000000000000000 boot_aggregate\n"},
		{"bypass boot_aggregate_late (§12.3)", "ima-ng",
			event{Name: "boot_aggregate_late", Alg: ima.HashSHA256, Digest: zero32, D: make([]byte, 20)},
			"4e5d73ebadfd8f850cb93ce4de755ba148a9a7d5", ""},
		{"empty file (§12.3)", "ima-ng",
			event{Name: "/run/utmp", Alg: ima.HashSHA256, Digest: empty, File: true},
			"22c48b4853594a08a73ad4ae6dbe6f2c2bebc6c5",
			"10 22c48b4853594a08a73ad4ae6dbe6f2c2bebc6c5 ima-ng sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 /run/utmp\n"},
		{"/init (realkernel a-ima-ng)", "ima-ng",
			event{Name: "/init", Alg: ima.HashSHA256, Digest: unhex(t, "f832af0444b3a53f05b5f6426014e76bd434479119be8c216cb72ec456fa0b45"), File: true},
			"5eb33509b48f00788f33c76637e9a901cdd1086d", ""},
		{"ima-sig boot_aggregate, empty sig (§12.4)", "ima-sig",
			event{Name: "boot_aggregate", Alg: ima.HashSHA256, Digest: agg},
			"f60a05d7354fb34aabc02965216abd3428ea52bb",
			"10 f60a05d7354fb34aabc02965216abd3428ea52bb ima-sig sha256:9887dd089ee19a6517bca10580b02c1bb9aa6cd86c157b6ead8a1c0403f348d5 boot_aggregate \n"},
		{"ima-sig boot_aggregate_late (§12.4)", "ima-sig",
			event{Name: "boot_aggregate_late", Alg: ima.HashSHA256, Digest: agg},
			"e2592b0d61da6300d3db447b143897a9792231ea", ""},
		{"legacy ima (§12.5)", "ima",
			event{Name: "boot_aggregate", Alg: ima.HashSHA1, D: unhex(t, "902992f8f550b797165537c7e8ab9a2f2170321d")},
			"2c6d5980faf686e5265e395c0200900a20d94c8d",
			"10 2c6d5980faf686e5265e395c0200900a20d94c8d ima 902992f8f550b797165537c7e8ab9a2f2170321d boot_aggregate\n"},
		{"ima-ngv2 empty file (§12.6)", "ima-ngv2",
			event{Name: "/run/utmp", Alg: ima.HashSHA256, Digest: empty, File: true},
			"b65c7ee9082db0eae6c04106ae3072ec6148041a", ""},
		{"ima-buf kernel_version (§12.3)", "ima-buf",
			event{Name: "kernel_version", Alg: ima.HashSHA256, Digest: unhex(t, "0c907aab3261194f16b0c2a422a82f145bc9b9ecb8fdb633fa43e3e5379f0af2"), Buf: []byte("7.1.0-rc1+")},
			"49ab61dd97ea2f759edcb6c6a3387ac67f0aa576",
			"10 49ab61dd97ea2f759edcb6c6a3387ac67f0aa576 ima-buf sha256:0c907aab3261194f16b0c2a422a82f145bc9b9ecb8fdb633fa43e3e5379f0af2 kernel_version 372e312e302d7263312b\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := buildEntry(tmpl(t, tc.tmpl), &tc.ev, 10, binary.LittleEndian)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(e.Digest); got != tc.digest {
				t.Errorf("template digest %s, want %s", got, tc.digest)
			}
			if tc.line != "" {
				if got := string(appendASCII(nil, e, e.Digest)); got != tc.line {
					t.Errorf("ascii\n got %q\nwant %q", got, tc.line)
				}
			}
			// The record must read back through ima.Reader to the same entry.
			rec, err := appendBinary(nil, e, e.Digest, binary.LittleEndian)
			if err != nil {
				t.Fatal(err)
			}
			r := ima.NewReader(bytes.NewReader(rec), ima.ReaderOptions{Order: binary.LittleEndian, DigestSize: 20})
			back, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Data, e.Data) || back.Template != e.Template || !bytes.Equal(back.Digest, e.Digest) {
				t.Errorf("read back differs: %+v", back)
			}
		})
	}
}

// readEvmctlPCRs reads "PCR-NN: HEX" lines (realkernel pcrs-<alg>.txt).
func readEvmctlPCRs(t *testing.T, path string, b pcr.Bank, set pcr.Set) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok || !strings.HasPrefix(k, "PCR-") {
			continue
		}
		i, err := strconv.Atoi(strings.TrimPrefix(k, "PCR-"))
		if err != nil {
			t.Fatal(err)
		}
		set.Put(b, i, unhex(t, strings.ToLower(v)))
	}
}

// TestAggregateRealKernel computes the boot aggregate from the PCRs a real
// kernel's TPM held (realkernel a-ima-ng) and compares the entry with the
// kernel's first line, whole: bytes of binary_runtime_measurements and the
// ASCII line.
func TestAggregateRealKernel(t *testing.T) {
	needCaptures(t)
	dir := filepath.Join(realkernel, "a-ima-ng")
	set := make(pcr.Set)
	readEvmctlPCRs(t, filepath.Join(dir, "pcrs-sha1.txt"), pcr.SHA1, set)
	readEvmctlPCRs(t, filepath.Join(dir, "pcrs-sha256.txt"), pcr.SHA256, set)
	banks := []pcr.Bank{pcr.SHA1, pcr.SHA256}
	agg, err := computeAggregate(set, banks, ima.HashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	e, err := buildEntry(tmpl(t, "ima-ng"), &event{Name: BootAggregate, Alg: agg.Alg, Digest: agg.Digest, D: agg.D}, 10, binary.LittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	ascii, _ := os.ReadFile(filepath.Join(dir, "ascii_runtime_measurements"))
	first, _, _ := bytes.Cut(ascii, []byte("\n"))
	if got := appendASCII(nil, e, e.Digest); string(got) != string(first)+"\n" {
		t.Errorf("aggregate line\n got %q\nwant %q", got, first)
	}
	bin, _ := os.ReadFile(filepath.Join(dir, "binary_runtime_measurements"))
	rec, err := appendBinary(nil, e, e.Digest, binary.LittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(bin, rec) {
		t.Errorf("aggregate record differs from the kernel's first record")
	}
	// §6.3: the legacy d field is SHA-1(PCR0..7) of the SHA-1 bank; with
	// ima_hash=sha1 the d-ng aggregate is the same value.
	agg1, err := computeAggregate(set, banks, ima.HashSHA1)
	if err != nil {
		t.Fatal(err)
	}
	if agg1.Alg != ima.HashSHA1 || !bytes.Equal(agg1.Digest, agg.D) || !bytes.Equal(agg1.D, agg.D) {
		t.Errorf("sha1 aggregate %x / d %x, want both %x", agg1.Digest, agg1.D, agg.D)
	}
}

func TestAggregateBankChoice(t *testing.T) {
	for _, tc := range []struct {
		banks []pcr.Bank
		alg   ima.HashAlg
		want  pcr.Bank
		ok    bool
	}{
		{[]pcr.Bank{pcr.SHA1, pcr.SHA256}, ima.HashSHA256, pcr.SHA256, true},
		{[]pcr.Bank{pcr.SHA1, pcr.SHA256}, ima.HashSHA512, pcr.SHA256, true},
		{[]pcr.Bank{pcr.SHA1}, ima.HashSHA512, pcr.SHA1, true},
		{[]pcr.Bank{pcr.SHA256, pcr.SHA1}, ima.HashSHA384, pcr.SHA256, true},
		{[]pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384}, ima.HashSHA384, pcr.SHA384, true},
		{[]pcr.Bank{pcr.SHA384}, ima.HashSHA256, 0, false},
		{[]pcr.Bank{pcr.SM3256, pcr.SHA256}, ima.HashSM3, pcr.SM3256, true},
	} {
		got, ok := aggregateBank(tc.banks, tc.alg)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%v %s: %s %v, want %s %v", tc.banks, tc.alg, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBankDigestsPadsUnknown(t *testing.T) {
	e, err := buildEntry(tmpl(t, "ima-ng"), &event{Name: "/x", Alg: ima.HashSHA256, Digest: make([]byte, 32), File: true}, 10, binary.LittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	odd := pcr.Bank(0x0027) // sha3_256: not mapped by the kernel (§1.2)
	d := bankDigests(e, e.Digest, []BankInfo{{pcr.SHA1, 20}, {pcr.SHA256, 32}, {odd, 32}})
	if !bytes.Equal(d[pcr.SHA1], e.Digest) || !bytes.Equal(d[pcr.SHA256], e.TemplateDigest(pcr.SHA256)) {
		t.Error("known banks not the template digests")
	}
	want := append(bytes.Clone(e.Digest), make([]byte, 12)...)
	if !bytes.Equal(d[odd], want) {
		t.Errorf("unknown bank %x, want padded sha1 %x", d[odd], want)
	}
}

func TestStages(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		tpmOn, initLate, found bool
		want                   Decision
	}{
		{"found", true, false, true, Decision{InitTPM, BootAggregate, ""}},
		{"absent", true, false, false, Decision{Defer, "", msgWillTryLater}},
		{"none", false, false, false, Decision{InitBypass, BootAggregate, msgBypass}},
		{"init late", true, true, true, Decision{Action: Defer}},
	} {
		if got := FirstStage(tc.tpmOn, tc.initLate, tc.found); got != tc.want {
			t.Errorf("first %s: %+v want %+v", tc.name, got, tc.want)
		}
	}
	if got := LateStage(Initialised, true, true); got.Action != Nothing {
		t.Errorf("late after init: %+v", got)
	}
	if got := LateStage(Deferred, true, true); got != (Decision{InitTPM, BootAggregateLate, ""}) {
		t.Errorf("late found: %+v", got)
	}
	if got := LateStage(Deferred, true, false); got != (Decision{InitBypass, BootAggregateLate, msgBypass}) {
		t.Errorf("late absent: %+v", got)
	}
	if got := LateStage(Deferred, false, false); got != (Decision{InitBypass, BootAggregateLate, msgBypass}) {
		t.Errorf("late none: %+v", got)
	}
}
