package ima

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
)

// evmctl runs `evmctl -v ima_measurement [extra] --pcrs <bank>,<file>...
// list` and returns whether it succeeded and the 1-based lines whose
// template digest it rejected ("Failed to verify template data digest(line
// N)"). evmctl 1.4 reads the list in host byte order (LE here).
func evmctl(t *testing.T, list []byte, pcrFiles map[pcr.Bank]string, extra ...string) (bool, []int, string) {
	t.Helper()
	path := testenv.Tool(t, "evmctl")
	dir := t.TempDir()
	lp := filepath.Join(dir, "list")
	if err := os.WriteFile(lp, list, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-v", "ima_measurement"}, extra...)
	for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
		if f, ok := pcrFiles[b]; ok {
			args = append(args, "--pcrs", b.String()+","+f)
		}
	}
	args = append(args, lp)
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var bad []int
	for _, m := range regexp.MustCompile(`Failed to verify template data digest\(line (\d+)\)`).FindAllSubmatch(out, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		bad = append(bad, n)
	}
	return err == nil, bad, string(out)
}

// ourBadLines returns the 1-based entries whose listed template digest does
// not recompute (violations excluded), i.e. imago's verdict.
func ourBadLines(es []*Entry) []int {
	var bad []int
	for i, e := range es {
		if !e.IsViolation() && !bytes.Equal(e.TemplateDigest(pcr.SHA1), e.Digest) {
			bad = append(bad, i+1)
		}
	}
	return bad
}

// TestEvmctl holds imago's output and verdicts against evmctl 1.4 and the
// TPM: (1) each realkernel ASCII list, turned into a binary list by imago,
// must pass evmctl's replay against the PCRs read from the TPM; (2) after
// corrupting one entry's data, evmctl and imago must reject the same entry;
// (3) a list built with NewEntry (every template kind, custom formats) must
// have template digests evmctl accepts.
func TestEvmctl(t *testing.T) {
	dirs := testfixture.Glob(t, "realkernel/*/pcrs-sha1.txt")
	for _, p := range dirs {
		dir := filepath.Dir(p)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			abs, _ := filepath.Abs(dir)
			files := map[pcr.Bank]string{
				pcr.SHA1:   filepath.Join(abs, "pcrs-sha1.txt"),
				pcr.SHA256: filepath.Join(abs, "pcrs-sha256.txt"),
			}
			asc, err := os.ReadFile(filepath.Join(dir, "ascii_runtime_measurements"))
			if err != nil {
				t.Fatal(err)
			}
			es, _ := readASCII(t, asc, ReaderOptions{Order: binary.LittleEndian})
			var list []byte
			for _, e := range es {
				list, _ = AppendBinary(list, e, binary.LittleEndian)
			}
			ok, bad, out := evmctl(t, list, files, "--ignore-violations")
			if !ok || len(bad) != 0 || len(ourBadLines(es)) != 0 {
				t.Fatalf("evmctl rejects imago's list (ok=%v bad=%v ours=%v):\n%s", ok, bad, ourBadLines(es), out)
			}
			// Corrupt one byte of the last non-violation entry's name.
			k := len(es) - 1
			for es[k].IsViolation() {
				k--
			}
			e := *es[k]
			e.Data = bytes.Clone(e.Data)
			e.Data[len(e.Data)-3] ^= 0x20
			es2 := append(append([]*Entry{}, es[:k]...), &e)
			list = list[:0]
			for _, e := range es2 {
				list, _ = AppendBinary(list, e, binary.LittleEndian)
			}
			ok, bad, out = evmctl(t, list, files, "--ignore-violations")
			ours := ourBadLines(es2)
			if ok || fmt.Sprint(bad) != fmt.Sprint(ours) || fmt.Sprint(ours) != fmt.Sprint([]int{k + 1}) {
				t.Errorf("verdicts differ: evmctl ok=%v bad=%v, imago bad=%v\n%s", ok, bad, ours, out)
			}
		})
	}
	t.Run("NewEntry", func(t *testing.T) {
		var es []*Entry
		add := func(e *Entry, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, e)
		}
		h := func(s string) []byte { return hashOf(HashSHA256, []byte(s)) }
		sig := []byte{3, 2, byte(HashSHA256), 0xd3, 0x32, 0x04, 0x49, 0, 3, 1, 2, 3}
		add(NewEntry(TemplateIMANG, nil, 10, DigestNG(HashSHA256, make([]byte, 32)), NameNG("boot_aggregate")))
		add(NewEntry(TemplateIMANG, nil, 10, DigestNG(HashSHA1, hashOf(HashSHA1, nil)), NameNG("/a file")))
		add(NewEntry(TemplateIMASig, nil, 10, DigestNG(HashSHA512, hashOf(HashSHA512, nil)), NameNG("/s"), Sig(sig)))
		add(NewEntry(TemplateIMASig, nil, 10, DigestNG(HashSHA256, h("t")), NameNG("/t"), Sig(nil)))
		add(NewEntry(TemplateIMABuf, nil, 10, DigestNG(HashSHA256, h("hi")), NameNG("kernel_version"), Buf([]byte("hi"))))
		add(NewEntry(TemplateIMANGv2, nil, 10, DigestNGv2("verity", HashSHA256, h("v")), NameNG("/v")))
		add(NewEntry(TemplateIMASigv2, nil, 10, DigestNGv2("ima", HashSHA256, h("w")), NameNG("/w"), Sig(nil)))
		add(NewEntry(TemplateIMAModsig, nil, 10, DigestNG(HashSHA256, h("m")), NameNG("/m.ko"), Sig(nil), DigestModsig(HashSHA256, h("m0")), Modsig([]byte{0x30, 0})))
		add(NewEntry(TemplateEVMSig, nil, 10, DigestNG(HashSHA256, h("c")), NameNG("/c"), EVMSig(nil), XattrNames("security.ima"),
			XattrLengths(nil, 3), XattrValues([]byte("abc")), UID(nil, 0), GID(nil, 0), Mode(nil, 0o100755)))
		add(NewEntry("d-ng|n-ng|iuid|igid", nil, 10, DigestNG(HashSHA256, h("b")), NameNG("/b"), UID(nil, 1000), GID(nil, 1000)))
		e := allFieldsEntry(t, binary.LittleEndian)
		add(NewEntry(e.Template, nil, 10, e.Fields...))
		var list []byte
		for _, e := range es {
			list, _ = AppendBinary(list, e, binary.LittleEndian)
		}
		// PCR 10 from imago's digests: evmctl recomputes every template
		// digest itself and replays; success means it agrees with each.
		v := replayPCR(es, pcr.SHA1, 10)
		var dump bytes.Buffer
		for i := range 24 {
			if i == 10 {
				fmt.Fprintf(&dump, "PCR-%02d: %X\n", i, v)
			} else {
				fmt.Fprintf(&dump, "PCR-%02d: %X\n", i, make([]byte, 20))
			}
		}
		pf := filepath.Join(t.TempDir(), "pcrs")
		os.WriteFile(pf, dump.Bytes(), 0o600)
		ok, bad, out := evmctl(t, list, map[pcr.Bank]string{pcr.SHA1: pf})
		if !ok || len(bad) != 0 {
			t.Fatalf("evmctl rejects NewEntry output (bad %v):\n%s", bad, out)
		}
	})
}
