package imago_test

// End-to-end test over the real-kernel captures: what Debian's Linux 6.1
// kernel wrote under qemu with a swtpm TPM (testdata/realkernel/*; recipe in
// ../shared/tools/realkernel, see testdata/realkernel/README.md). Every capture
// runs through the library as a verifier would use it, and every assertion is
// against a value from outside imago:
//
//   - the TPM: pcrs-<alg>.txt, PCRs read from sysfs in the guest right before
//     the lists were read (PCR 10 for the IMA replay, PCR 0-9 and the rest for
//     the firmware log replay and the boot aggregate);
//   - the kernel's own bytes: binary and ascii lists, runtime_measurements_count,
//     violations; re-encoding must give them back;
//   - the recipe's cross-checks in verify.txt: evmctl ima_measurement
//     ("succeed at entry N"), evmctl ima_boot_aggregate, tpm2_eventlog's
//     "pcrs:" replay, imacheck.py's replay variant per bank and evmctl's
//     signature verdicts;
//   - initramfs-manifest.txt: sha1/sha256/sha384/sha512 of every file the guest
//     measured, computed on the host by coreutils.

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/eventlog"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/replay"
)

// imaPCR is CONFIG_IMA_MEASURE_PCR_IDX of the captured kernel.
const imaPCR = 10

// signedKeyID is the key id of the recipe's test signing key (the last four
// bytes of x509_ima.der's SubjectKeyIdentifier, 58:04:...:B2:06:4D:BE).
const signedKeyID = 0xb2064dbe

// capture is one captured boot.
type capture struct {
	dir    string
	info   map[string]string // capture-info.txt
	bin    []byte            // binary_runtime_measurements
	ascii  []byte            // ascii_runtime_measurements
	count  int               // runtime_measurements_count
	viol   int               // violations
	tpm    pcr.Set           // pcrs-<alg>.txt; empty without a TPM
	banks  []pcr.Bank        // the TPM's banks in TPM order (capture-info pcr_banks)
	dmesg  string            // dmesg-ima-tpm.txt
	verify string            // verify.txt
}

func (c *capture) file(name string) string { return filepath.Join(c.dir, name) }

func (c *capture) has(name string) bool {
	_, err := os.Stat(c.file(name))
	return err == nil
}

func (c *capture) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(c.file(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *capture) readInt(t *testing.T, name string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(string(c.read(t, name))))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// imaHash is the hash algorithm IMA ended up with: dmesg's "ima: Allocated
// hash algorithm: X" (m-sha384-padded asks for sha384 and falls back to
// sha256), else the command line's ima_hash.
func (c *capture) imaHash() string {
	if m := regexp.MustCompile(`ima: Allocated hash algorithm: (\S+)`).FindStringSubmatch(c.dmesg); m != nil {
		return m[1]
	}
	for f := range strings.FieldsSeq(c.info["cmdline"]) {
		if v, ok := strings.CutPrefix(f, "ima_hash="); ok {
			return v
		}
	}
	return "sha1"
}

func loadCapture(t *testing.T, dir string) *capture {
	t.Helper()
	c := &capture{dir: dir, info: map[string]string{}, tpm: make(pcr.Set)}
	for line := range strings.Lines(string(c.read(t, "capture-info.txt"))) {
		if k, v, ok := strings.Cut(strings.TrimRight(line, "\n"), "="); ok {
			c.info[k] = v
		}
	}
	c.bin = c.read(t, "binary_runtime_measurements")
	c.ascii = c.read(t, "ascii_runtime_measurements")
	c.count = c.readInt(t, "runtime_measurements_count")
	c.viol = c.readInt(t, "violations")
	if c.has("dmesg-ima-tpm.txt") {
		c.dmesg = string(c.read(t, "dmesg-ima-tpm.txt"))
	}
	if c.has("verify.txt") {
		c.verify = string(c.read(t, "verify.txt"))
	}
	if c.info["tpm"] != "none" {
		for name := range strings.SplitSeq(c.info["pcr_banks"], ",") {
			b, err := pcr.ParseBank(name)
			if err != nil {
				t.Fatalf("capture-info.txt pcr_banks: %v", err)
			}
			c.banks = append(c.banks, b)
		}
	}
	files, _ := filepath.Glob(c.file("pcrs-*.txt"))
	for _, f := range files {
		alg, ok := strings.CutSuffix(strings.TrimPrefix(filepath.Base(f), "pcrs-"), ".txt")
		if !ok || strings.HasSuffix(alg, "-after") {
			continue
		}
		b, err := pcr.ParseBank(alg)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		data := c.read(t, filepath.Base(f))
		set, err := pcr.ParseEvmctl(b, data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if n := len(set.Indexes(b)); n != 24 {
			t.Fatalf("%s: %d PCRs, want 24", f, n)
		}
		// The PCRs read again after the lists must be the same, or the
		// snapshot was not stable and nothing below holds.
		if after, err := os.ReadFile(c.file("pcrs-" + alg + "-after.txt")); err == nil && !bytes.Equal(after, data) {
			t.Fatalf("%s differs from its -after read: the PCRs moved during the snapshot", f)
		}
		c.tpm.Merge(set)
	}
	// TPM 1.2: the legacy sysfs "pcrs" file ("PCR-00: 3A 3F ...") holds the
	// same SHA-1 values.
	if data, err := os.ReadFile(c.file("tpm12-pcrs.txt")); err == nil {
		set, err := pcr.ParseEvmctl(pcr.SHA1, data)
		if err != nil {
			t.Fatalf("tpm12-pcrs.txt: %v", err)
		}
		for i := range 24 {
			a, _ := set.Get(pcr.SHA1, i)
			b, _ := c.tpm.Get(pcr.SHA1, i)
			if !bytes.Equal(a, b) {
				t.Fatalf("PCR %d: tpm12-pcrs.txt %x, pcrs-sha1.txt %x", i, a, b)
			}
		}
	}
	if !slices.Equal(c.tpm.Banks(), sortedBanks(c.banks)) {
		t.Fatalf("PCR files hold banks %v, capture-info.txt pcr_banks %v", c.tpm.Banks(), c.banks)
	}
	return c
}

func sortedBanks(b []pcr.Bank) []pcr.Bank {
	s := slices.Clone(b)
	slices.Sort(s)
	return s
}

// realkernelCaptures returns the capture folders of testdata/realkernel.
func realkernelCaptures(t *testing.T) []string {
	t.Helper()
	var dirs []string
	for _, p := range testfixture.Glob(t, "realkernel/*/binary_runtime_measurements") {
		dirs = append(dirs, filepath.Dir(p))
	}
	// The README's count: 17 captures (testdata/realkernel/README.md).
	if len(dirs) != 17 {
		t.Fatalf("%d real-kernel captures, want the 17 of testdata/realkernel/README.md", len(dirs))
	}
	return dirs
}

func TestRealKernel(t *testing.T) {
	dirs := realkernelCaptures(t)
	cli := buildCLI(t)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c := loadCapture(t, dir)
			t.Run("lists", c.testLists)
			t.Run("files", c.testFileDigests)
			t.Run("replay", c.testReplay)
			t.Run("eventlog", c.testEventlog)
			t.Run("bootagg", c.testBootAggregate)
			t.Run("signatures", c.testSignatures)
			t.Run("cli", func(t *testing.T) {
				if cli == "" {
					testenv.SkipShort(t)
				}
				c.testCLI(t, cli)
			})
		})
	}
}

// readList reads a whole list with NewListReader and checks the format it
// sniffed.
func readList(t *testing.T, data []byte, want ima.Format) ([]*ima.Entry, *ima.ListReader) {
	t.Helper()
	lr := ima.NewListReader(bytes.NewReader(data), ima.ReaderOptions{})
	var out []*ima.Entry
	for e, err := range lr.All() {
		if err != nil {
			t.Fatalf("%s list, entry %d: %v", want, len(out), err)
		}
		out = append(out, e)
	}
	if lr.Format() != want {
		t.Fatalf("NewListReader sniffed %s, want %s", lr.Format(), want)
	}
	return out, lr
}

func (c *capture) entries(t *testing.T) []*ima.Entry {
	t.Helper()
	es, _ := readList(t, c.bin, ima.FormatBinary)
	return es
}

// testLists: binary and ascii decode to the same entries, as many as the
// kernel counted; the violations are the kernel's count; every template digest
// recomputes; re-encoding gives the kernel's bytes back.
func (c *capture) testLists(t *testing.T) {
	bin, blr := readList(t, c.bin, ima.FormatBinary)
	asc, alr := readList(t, c.ascii, ima.FormatASCII)
	// The kernel's own ascii output needs no leniency.
	if n := alr.ASCII().Lenient(); n != 0 || alr.ASCII().MissingFinalNewline() {
		t.Errorf("ascii list: %d lenient lines, missing final newline %v; want 0, false", n, alr.ASCII().MissingFinalNewline())
	}
	if blr.Binary().TrailingNewline() {
		t.Errorf("binary list: reported a stray trailing newline")
	}
	if len(bin) != c.count || len(asc) != c.count {
		t.Fatalf("binary %d entries, ascii %d, runtime_measurements_count %d", len(bin), len(asc), c.count)
	}
	if blr.DigestSize() != 20 {
		t.Errorf("binary list digest width %d, want 20", blr.DigestSize())
	}
	viol := 0
	var reBin, reASCII []byte
	for i, b := range bin {
		a := asc[i]
		if b.PCR != a.PCR || b.Template != a.Template || !bytes.Equal(b.Digest, a.Digest) || !bytes.Equal(b.Data, a.Data) {
			t.Errorf("entry %d: binary {%d %x %s %x} != ascii {%d %x %s %x}", i,
				b.PCR, b.Digest, b.Template, b.Data, a.PCR, a.Digest, a.Template, a.Data)
		}
		if b.PCR != imaPCR {
			t.Errorf("entry %d: PCR %d, want %d", i, b.PCR, imaPCR)
		}
		if d, err := b.FileDigest(); err == nil && strings.Contains(b.Template, "v2") && d.Type != "ima" {
			t.Errorf("entry %d (%s): d-ngv2 digest type %q, want ima", i, b.Template, d.Type)
		}
		if b.IsViolation() {
			viol++
			if d, err := b.FileDigest(); err != nil || !d.IsZero() {
				t.Errorf("entry %d: violation with file digest %v (%v), want zeros", i, d, err)
			}
		} else if got := b.TemplateDigest(pcr.SHA1); !bytes.Equal(got, b.Digest) {
			t.Errorf("entry %d (%s): template data hash to %x, listed %x", i, b.Template, got, b.Digest)
		}
		var err error
		if reBin, err = ima.AppendBinary(reBin, b, blr.ByteOrder()); err != nil {
			t.Fatalf("entry %d: AppendBinary: %v", i, err)
		}
		reASCII = ima.AppendASCII(reASCII, b)
	}
	if viol != c.viol {
		t.Errorf("%d violation entries, the kernel's violations file says %d", viol, c.viol)
	}
	if !bytes.Equal(reBin, c.bin) {
		t.Errorf("re-encoded binary list differs from the kernel's (%d vs %d bytes)", len(reBin), len(c.bin))
	}
	if !bytes.Equal(reASCII, c.ascii) {
		t.Errorf("re-encoded ascii list differs from the kernel's:\n%s", firstLineDiff(reASCII, c.ascii))
	}
	// The allocation-free Scanner (replay's hot path) sees the same records.
	order, width, err := ima.DetectBinary(c.bin, ima.ReaderOptions{})
	if err != nil {
		t.Fatalf("DetectBinary: %v", err)
	}
	n := 0
	for e, err := range ima.NewScanner(bytes.NewReader(c.bin), order, width).All() {
		if err != nil {
			t.Fatalf("Scanner, record %d: %v", n, err)
		}
		if n >= len(bin) || e.PCR != bin[n].PCR || e.Template != bin[n].Template ||
			!bytes.Equal(e.Digest, bin[n].Digest) || !bytes.Equal(e.Data, bin[n].Data) {
			t.Errorf("Scanner record %d differs from Reader entry", n)
		}
		n++
	}
	if n != len(bin) {
		t.Errorf("Scanner read %d records, Reader %d", n, len(bin))
	}
	if !bin[0].IsBootAggregate() {
		t.Errorf("first entry is not boot_aggregate")
	}
}

func firstLineDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n got %q\nwant %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(al), len(bl))
}

// testFileDigests: every file digest of a file the host put into the
// initramfs equals its digest in initramfs-manifest.txt; every ima-buf digest
// is the hash of its buffer.
func (c *capture) testFileDigests(t *testing.T) {
	manifest := map[string]map[string]string{} // kernel-style path -> alg -> hex
	for line := range strings.Lines(string(c.read(t, "initramfs-manifest.txt"))) {
		f := strings.SplitN(strings.TrimRight(line, "\n"), " ", 5)
		if len(f) != 5 {
			t.Fatalf("manifest line %q", line)
		}
		m := map[string]string{}
		for _, d := range f[:4] {
			alg, sum, _ := strings.Cut(d, ":")
			m[alg] = sum
		}
		manifest[strings.ReplaceAll(f[4], " ", "_")] = m // the kernel writes ' ' as '_' (n-ng)
	}
	files, bufs := 0, 0
	for i, e := range c.entries(t) {
		if e.IsViolation() || e.IsBootAggregate() {
			continue
		}
		d, err := e.FileDigest()
		if err != nil {
			t.Errorf("entry %d: FileDigest: %v", i, err)
			continue
		}
		if buf, ok := e.Field(ima.FieldBuf); ok {
			h := d.Alg.New()
			h.Write(buf)
			if got := h.Sum(nil); !bytes.Equal(got, d.Sum) {
				t.Errorf("entry %d: ima-buf digest %v, %s(buf) = %x", i, d, d.Alg, got)
			}
			bufs++
			continue
		}
		name, err := e.Name()
		if err != nil {
			t.Errorf("entry %d: Name: %v", i, err)
			continue
		}
		// p-ima-sig-signed copies /etc/fixture/signed/X to a tmpfs at /signed/X.
		if rest, ok := strings.CutPrefix(name, "/signed/"); ok {
			name = "/etc/fixture/signed/" + rest
		}
		m, ok := manifest[name]
		if !ok {
			continue // made in the guest (/var/tmp/...) or a policy file outside the manifest
		}
		if want := m[d.Alg.String()]; want != hex.EncodeToString(d.Sum) {
			t.Errorf("entry %d %s: %v, manifest %s:%s", i, name, d, d.Alg, want)
		}
		files++
	}
	if files == 0 {
		t.Errorf("no file digest could be checked against the manifest")
	}
	t.Logf("%d file digests match the manifest, %d ima-buf digests match their buffers", files, bufs)
}

// Facts from verify.txt.
var (
	// evmctl -v ima_measurement: "sha1 PCR-10: succeed at entry 16"
	reEvmctlSucceed = regexp.MustCompile(`(?m)^(\w+) PCR-10: succeed at entry (\d+)$`)
	// imacheck.py: "OK   PCR-10 replay sha384: matched with sha1-padded bank digests: ..."
	reImacheckVariant = regexp.MustCompile(`(?m)^OK +PCR-10 replay (\w+): matched with (real|sha1-padded) bank digests`)
	// imacheck.py: "OK   boot_aggregate from captured sha384 PCR0-9: sha384:<hex>"
	reImacheckAgg = regexp.MustCompile(`(?m)^OK +boot_aggregate from captured (\w+) PCR0-\d: (\w+):([0-9a-f]+)$`)
	// evmctl ima_boot_aggregate output lines
	reAggLine = regexp.MustCompile(`^(sha1|sha256):([0-9a-f]+)$`)
	// evmctl --verify-sig: "/signed/data-signed.txt: verification is OK"
	reSigVerdict = regexp.MustCompile(`(?m)^(/\S+): verification (is OK|failed)`)
)

// evmctlOutput returns the lines printed by the verify.txt command that
// starts with prefix, up to its exit status, and that status.
func (c *capture) evmctlOutput(prefix string) (lines []string, status int, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(c.verify))
	in := false
	for sc.Scan() {
		l := sc.Text()
		switch {
		case !in && strings.HasPrefix(l, "$ "+prefix):
			in = true
		case in && strings.HasPrefix(l, "[exit status "):
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(l, "[exit status "), "]"))
			return lines, n, true
		case in:
			lines = append(lines, l)
		}
	}
	return nil, 0, false
}

// tpm2EventlogPCRs parses the "pcrs:" section tpm2_eventlog printed in
// verify.txt: the PCRs its replay of binary_bios_measurements gives.
func (c *capture) tpm2EventlogPCRs(t *testing.T) pcr.Set {
	// verify.sh keeps only tpm2_eventlog's output from "pcrs:" to its exit
	// status.
	_, section, ok := strings.Cut(c.verify, "\npcrs:\n")
	if !ok {
		return nil
	}
	section, _, ok = strings.Cut(section, "\n[exit status 0]\n")
	if !ok {
		return nil
	}
	set := make(pcr.Set)
	var bank pcr.Bank
	in := true
	for l := range strings.Lines(section) {
		l = strings.TrimRight(l, "\n")
		switch {
		case !in:
		case strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "    ") && strings.HasSuffix(l, ":"):
			b, err := pcr.ParseBank(strings.TrimSuffix(strings.TrimSpace(l), ":"))
			if err != nil {
				t.Fatalf("tpm2_eventlog bank line %q: %v", l, err)
			}
			bank = b
		case strings.HasPrefix(l, "    "):
			idx, val, _ := strings.Cut(l, ":")
			i, err1 := strconv.Atoi(strings.TrimSpace(idx))
			v, err2 := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(val), "0x"))
			if err1 != nil || err2 != nil || bank == 0 {
				t.Fatalf("tpm2_eventlog PCR line %q", l)
			}
			set.Put(bank, i, v)
		default:
			in = false
		}
	}
	return set
}

func (c *capture) openBinary() iter.Seq2[*ima.Entry, error] {
	return ima.NewReader(bytes.NewReader(c.bin), ima.ReaderOptions{}).All()
}

func (c *capture) openASCII() iter.Seq2[*ima.Entry, error] {
	return ima.NewASCIIReader(bytes.NewReader(c.ascii), ima.ReaderOptions{}).All()
}

// testReplay: the list replays to the TPM's PCR 10 in every bank, each bank
// with the variant imacheck.py found (real per-bank digests, or the padded
// SHA-1 of a bank the kernel could not hash, ima-spec §4.3), at the entry
// evmctl reports.
func (c *capture) testReplay(t *testing.T) {
	if len(c.tpm) == 0 {
		// No TPM (d-no-tpm): only the template digests can be checked.
		res, err := replay.Replay(c.openBinary(), replay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Entries != c.count || res.Violations != c.viol || res.TemplateMismatchCount != 0 {
			t.Errorf("replay: %d entries, %d violations, %d template mismatches; want %d, %d, 0",
				res.Entries, res.Violations, res.TemplateMismatchCount, c.count, c.viol)
		}
		return
	}
	banks := c.tpm.Banks()
	target := make(pcr.Set)
	for _, b := range banks {
		v, _ := c.tpm.Get(b, imaPCR)
		target.Put(b, imaPCR, v)
	}
	wantVariant := map[pcr.Bank]replay.Variant{}
	for _, m := range reImacheckVariant.FindAllStringSubmatch(c.verify, -1) {
		b, err := pcr.ParseBank(m[1])
		if err != nil {
			t.Fatal(err)
		}
		wantVariant[b] = replay.PerBank
		if m[2] == "sha1-padded" {
			wantVariant[b] = replay.PaddedSHA1
		}
	}
	if len(wantVariant) != len(banks) {
		t.Errorf("verify.txt: imacheck names a replay variant for %d banks, the TPM has %d", len(wantVariant), len(banks))
	}
	wantPrefix := map[pcr.Bank]int{}
	for _, m := range reEvmctlSucceed.FindAllStringSubmatch(c.verify, -1) {
		b, _ := pcr.ParseBank(m[1])
		wantPrefix[b], _ = strconv.Atoi(m[2])
	}

	for _, src := range []struct {
		name string
		open func() iter.Seq2[*ima.Entry, error]
	}{{"binary", c.openBinary}, {"ascii", c.openASCII}} {
		for _, inline := range []bool{false, true} {
			rep, err := replay.Check(src.open, target, replay.Options{Banks: banks, InlinePadded: inline})
			if err != nil {
				t.Fatalf("%s list: Check: %v", src.name, err)
			}
			if err := rep.Err(); err != nil {
				t.Errorf("%s list (InlinePadded=%v): %v", src.name, inline, err)
			}
			if rep.Entries != c.count || rep.Violations != c.viol {
				t.Errorf("%s list: %d entries, %d violations; kernel %d, %d", src.name, rep.Entries, rep.Violations, c.count, c.viol)
			}
			for _, b := range banks {
				i := slices.IndexFunc(rep.Checks, func(k replay.PCRCheck) bool { return k.Bank == b && k.PCR == imaPCR })
				if i < 0 {
					t.Errorf("%s list: no verdict for %s PCR %d", src.name, b, imaPCR)
					continue
				}
				k := rep.Checks[i]
				if !k.Matched {
					t.Errorf("%s list: %s PCR %d: replay %x, TPM %x", src.name, b, imaPCR, k.Got, k.Want)
					continue
				}
				if want, ok := wantVariant[b]; ok && k.Variant != want {
					t.Errorf("%s list: %s matched as %s, imacheck.py found %s", src.name, b, k.Variant, want)
				}
				want, ok := wantPrefix[b]
				if !ok {
					want = c.count // the PCRs were read before the list; nothing was measured in between
				}
				if k.Prefix != want {
					t.Errorf("%s list: %s matched at entry %d, evmctl at %d", src.name, b, k.Prefix, want)
				}
			}
		}
	}

	// Replay alone: the final value of the variant the kernel used is the TPM's.
	res, err := replay.Replay(c.openBinary(), replay.Options{Banks: banks, InlinePadded: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range banks {
		want, _ := c.tpm.Get(b, imaPCR)
		perBank, _ := res.PCRs.Get(b, imaPCR)
		padded, _ := res.Padded.Get(b, imaPCR)
		switch wantVariant[b] {
		case replay.PerBank:
			if !bytes.Equal(perBank, want) {
				t.Errorf("Replay %s PCR %d: %x, TPM %x", b, imaPCR, perBank, want)
			}
		case replay.PaddedSHA1:
			if !bytes.Equal(padded, want) {
				t.Errorf("Replay %s PCR %d padded SHA-1: %x, TPM %x", b, imaPCR, padded, want)
			}
			if bytes.Equal(perBank, want) {
				t.Errorf("Replay %s PCR %d: per-bank value %x also matches", b, imaPCR, perBank)
			}
			t.Logf("%s: the kernel could not hash this bank: PCR %d = padded SHA-1 replay %x (per-bank would be %x)", b, imaPCR, padded, perBank)
		}
	}
}

// resetValue is a PCR's value after TPM2_Startup: zeros, all 0xFF for the
// locality 4 PCRs 17-22.
func resetValue(b pcr.Bank, i int) []byte {
	if i >= 17 && i <= 22 {
		return bytes.Repeat([]byte{0xff}, b.Size())
	}
	return pcr.Zero(b)
}

func (c *capture) eventlogPCRs(t *testing.T) (pcr.Set, eventlog.ReplayInfo) {
	t.Helper()
	l, err := eventlog.ReadLog(bytes.NewReader(c.read(t, "binary_bios_measurements")))
	if err != nil {
		t.Fatal(err)
	}
	set, info, err := l.Replay()
	if err != nil {
		t.Fatal(err)
	}
	return set, info
}

// testEventlog: the firmware log replays to the TPM's PCRs in every bank and
// every PCR but 10 (IMA's), and to what tpm2_eventlog computed.
func (c *capture) testEventlog(t *testing.T) {
	if !c.has("binary_bios_measurements") {
		// Only a boot without a TPM has no firmware log to check.
		if c.info["tpm"] != "none" {
			t.Fatalf("no binary_bios_measurements, but the capture had a TPM (%s)", c.info["tpm"])
		}
		return
	}
	set, info := c.eventlogPCRs(t)
	wantFormat := eventlog.FormatCryptoAgile
	if c.info["tpm_version"] == "1.2" {
		wantFormat = eventlog.FormatSHA1
	}
	if info.Format != wantFormat {
		t.Errorf("log format %s, want %s", info.Format, wantFormat)
	}
	if !slices.Equal(info.Banks, c.tpm.Banks()) || len(info.Unknown)+len(info.Incomplete) != 0 {
		t.Errorf("log banks %v (unknown %v, incomplete %v), TPM banks %v", info.Banks, info.Unknown, info.Incomplete, c.tpm.Banks())
	}
	for _, b := range c.tpm.Banks() {
		for i := range 24 {
			if i == imaPCR {
				continue
			}
			want, _ := c.tpm.Get(b, i)
			got, ok := set.Get(b, i)
			if !ok {
				got = resetValue(b, i)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s PCR %d: log replay %x (present %v), TPM %x", b, i, got, ok, want)
			}
		}
	}
	if c.has("ascii_bios_measurements") {
		c.compareASCIIBios(t)
	}
	if ref := c.tpm2EventlogPCRs(t); ref != nil {
		n := 0
		for _, b := range ref.Banks() {
			for _, i := range ref.Indexes(b) {
				want, _ := ref.Get(b, i)
				if got, _ := set.Get(b, i); !bytes.Equal(got, want) {
					t.Errorf("%s PCR %d: log replay %x, tpm2_eventlog %x", b, i, got, want)
				}
				n++
			}
		}
		t.Logf("%d events, %d extended; agrees with tpm2_eventlog on %d PCR values", info.Events, info.Extended, n)
	} else if wantFormat == eventlog.FormatCryptoAgile && c.verify != "" {
		t.Errorf("verify.txt has no tpm2_eventlog replay")
	}
}

// compareASCIIBios checks the SHA-1 log's events against the kernel's own
// rendering of it (TPM 1.2 ascii_bios_measurements: "%2d %40x %02x [name]"
// per event: PCR, SHA-1 digest, event type, event name).
func (c *capture) compareASCIIBios(t *testing.T) {
	l, err := eventlog.ReadLog(bytes.NewReader(c.read(t, "binary_bios_measurements")))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(c.read(t, "ascii_bios_measurements")), "\n"), "\n")
	if len(lines) != len(l.Events) {
		t.Fatalf("%d events, the kernel's ascii_bios_measurements has %d lines", len(l.Events), len(lines))
	}
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("ascii_bios_measurements line %d: %q", i+1, line)
		}
		e := l.Events[i]
		d, _ := e.Digest(pcr.SHA1)
		typ, _ := strconv.ParseUint(f[2], 16, 32)
		if f[0] != strconv.Itoa(int(e.PCR)) || f[1] != hex.EncodeToString(d) || typ != uint64(e.Type) {
			t.Errorf("event %d: PCR %d sha1 %x type %#x (%s); kernel: %q", i, e.PCR, d, uint32(e.Type), e.Type, line)
		}
	}
}

// aggregateOf returns the boot aggregate entry's name, algorithm (kernel
// name; "" for the legacy d field) and digest.
func aggregateOf(t *testing.T, e *ima.Entry) (name, alg string, sum []byte) {
	t.Helper()
	name, err := e.Name()
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.FileDigest()
	if err != nil {
		t.Fatal(err)
	}
	if _, legacy := e.Field(ima.FieldD); legacy {
		return name, "", d.Sum
	}
	return name, d.Alg.String(), d.Sum
}

// testBootAggregate: the first entry is the boot aggregate the kernel computes
// from the TPM's PCRs (and from the firmware log's replay), by the expected
// rule; the values agree with evmctl ima_boot_aggregate and imacheck.py.
func (c *capture) testBootAggregate(t *testing.T) {
	first := c.entries(t)[0]
	name, alg, sum := aggregateOf(t, first)
	if name != bootagg.Name {
		t.Fatalf("first entry %q", name)
	}
	if len(c.tpm) == 0 {
		// TPM-bypass: zeros of ima_hash, accepted only by CheckNoTPM.
		if r, err := bootagg.CheckNoTPM(name, alg, sum); err != nil || r != bootagg.RuleNoTPM {
			t.Errorf("CheckNoTPM(%s:%x) = %v, %v", alg, sum, r, err)
		}
		if r, err := bootagg.Check(name, alg, sum, pcr.Set{}); err == nil {
			t.Errorf("Check without PCRs accepted the zero aggregate (%v)", r)
		}
		wantAlg, wantSum, ok := bootagg.NoTPM(c.imaHash())
		if !ok || wantAlg != alg || !bytes.Equal(wantSum, sum) {
			t.Errorf("NoTPM(%s) = %s:%x, list has %s:%x", c.imaHash(), wantAlg, wantSum, alg, sum)
		}
		return
	}
	if c.info["tpm_version"] == "1.2" && alg != "sha1" {
		// A TPM 1.2 has only SHA-1 PCRs: sha1 whatever ima_hash is.
		t.Errorf("TPM 1.2 boot aggregate %s:%x, want sha1", alg, sum)
	}
	wantRule := bootagg.RulePCR0to9
	if alg == "sha1" || alg == "" {
		wantRule = bootagg.RuleSHA1
	}
	shown := alg + ":" + hex.EncodeToString(sum)
	if r, err := bootagg.Check(name, alg, sum, c.tpm); err != nil || r != wantRule {
		t.Errorf("Check(%s) from TPM PCRs = %v, %v; want %v", shown, r, err, wantRule)
	}
	if _, err := bootagg.CheckNoTPM(name, alg, sum); err == nil {
		t.Errorf("CheckNoTPM accepted %s", shown)
	}
	if c.has("binary_bios_measurements") {
		logset, _ := c.eventlogPCRs(t)
		if r, err := bootagg.Check(name, alg, sum, logset); err != nil || r != wantRule {
			t.Errorf("Check(%s) from the firmware log = %v, %v; want %v", shown, r, err, wantRule)
		}
		// q-tpm12: evmctl reads TPM 1.2 logs itself.
		if lines, st, ok := c.evmctlOutput("evmctl ima_boot_aggregate binary_bios_measurements"); ok && st == 0 {
			c.compareAggregates(t, "evmctl (event log)", lines, bootagg.Compute(logset))
		}
	}
	// Which bank and rule the kernel picks (ima_hash bank, else sha256, else
	// sha1; §6.2), from the TPM's banks in TPM order and the hash IMA used.
	if alg == "" {
		if got := bootagg.KernelLegacy(c.banks, c.imaHash(), c.tpm); !bytes.Equal(got, sum) {
			t.Errorf("KernelLegacy(%v, %s) = %x, list has d:%x", c.banks, c.imaHash(), got, sum)
		}
	} else if kalg, ksum, ok := bootagg.Kernel(c.banks, c.imaHash(), c.tpm); !ok || kalg != alg || !bytes.Equal(ksum, sum) {
		t.Errorf("Kernel(%v, %s) = %s:%x (%v), list has %s", c.banks, c.imaHash(), kalg, ksum, ok, shown)
	}
	// Every bank's aggregate as evmctl and imacheck.py compute it.
	computed := bootagg.Compute(c.tpm)
	if lines, st, ok := c.evmctlOutput("evmctl ima_boot_aggregate --pcrs"); ok && st == 0 {
		c.compareAggregates(t, "evmctl", lines, computed)
	} else if c.verify != "" {
		t.Errorf("verify.txt has no evmctl ima_boot_aggregate --pcrs output")
	}
	for _, m := range reImacheckAgg.FindAllStringSubmatch(c.verify, -1) {
		b, _ := pcr.ParseBank(m[1])
		if got := hex.EncodeToString(computed[b]); got != m[3] {
			t.Errorf("%s boot aggregate: Compute %s, imacheck.py %s", b, got, m[3])
		}
	}
}

func (c *capture) compareAggregates(t *testing.T, who string, lines []string, computed map[pcr.Bank][]byte) {
	t.Helper()
	n := 0
	for _, l := range lines {
		m := reAggLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		b, _ := pcr.ParseBank(m[1])
		if got := hex.EncodeToString(computed[b]); got != m[2] {
			t.Errorf("%s boot aggregate: Compute %s, %s %s", b, got, who, m[2])
		}
		n++
	}
	if n == 0 {
		t.Errorf("%s printed no aggregate", who)
	}
}

// testSignatures: the sig fields decode. In p-ima-sig-signed three files
// carry security.ima v2 RSA-2048/sha256 signatures by the test key (keyid
// b2064dbe); each verifies or not as evmctl --verify-sig said. The RSA check
// here uses crypto/rsa directly, apart from imago's verifier (ima/digsig,
// held to the same verdicts by its TestRealKernelSignedList).
func (c *capture) testSignatures(t *testing.T) {
	tmpl, err := c.entries(t)[0].Descriptor()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tmpl.Fields, ima.FieldSig) {
		return // template without a sig field: nothing to decode
	}
	var pub *rsa.PublicKey
	if c.has("x509_ima.der") {
		cert, err := x509.ParseCertificate(c.read(t, "x509_ima.der"))
		if err != nil {
			t.Fatal(err)
		}
		pub = cert.PublicKey.(*rsa.PublicKey)
		if kid := cert.SubjectKeyId; len(kid) < 4 || uint32(kid[len(kid)-4])<<24|uint32(kid[len(kid)-3])<<16|uint32(kid[len(kid)-2])<<8|uint32(kid[len(kid)-1]) != signedKeyID {
			t.Errorf("x509_ima.der SubjectKeyIdentifier %x does not end in %08x", kid, signedKeyID)
		}
	}
	verdicts := map[string]bool{}
	for _, m := range reSigVerdict.FindAllStringSubmatch(c.verify, -1) {
		verdicts[m[1]] = m[2] == "is OK"
	}
	signed := 0
	for i, e := range c.entries(t) {
		h, raw, err := e.Signature()
		if errors.Is(err, ima.ErrNoField) {
			continue
		}
		name, _ := e.Name()
		if err != nil {
			t.Errorf("entry %d %s: signature %x: %v", i, name, raw, err)
			continue
		}
		signed++
		if h.Type != 3 || h.Version != 2 || h.HashAlg != ima.HashSHA256 || h.KeyID != signedKeyID ||
			int(h.SigSize) != len(h.Signature) || len(h.Signature) != 256 {
			t.Errorf("entry %d %s: header {type %d v%d %s keyid %08x size %d, %d bytes}, want {3 v2 sha256 %08x 256}",
				i, name, h.Type, h.Version, h.HashAlg, h.KeyID, h.SigSize, len(h.Signature), signedKeyID)
		}
		want, ok := verdicts[name]
		if pub == nil || !ok {
			t.Errorf("entry %d %s: signed, but no key or no evmctl verdict to compare with", i, name)
			continue
		}
		d, err := e.FileDigest()
		if err != nil {
			t.Fatal(err)
		}
		got := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d.Sum, h.Signature) == nil
		if got != want {
			t.Errorf("entry %d %s: RSA verification %v, evmctl %v", i, name, got, want)
		}
	}
	wantSigned := 0
	if c.has("x509_ima.der") {
		wantSigned = 3
	}
	if signed != wantSigned || len(verdicts) != wantSigned {
		t.Errorf("%d entries with a signature, %d evmctl verdicts; want %d", signed, len(verdicts), wantSigned)
	}
}

// buildCLI builds cmd/imago once into a temporary folder. The lead writes the
// CLI in parallel; if it does not build, the CLI subtests skip.
// buildCLI builds cmd/imago, or returns "" under -short.
func buildCLI(t *testing.T) string {
	if testing.Short() {
		return ""
	}
	bin := filepath.Join(t.TempDir(), "imago")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/imago").CombinedOutput()
	if err != nil {
		t.Fatalf("building cmd/imago: %v: %s", err, bytes.TrimSpace(out))
	}
	return bin
}

func (c *capture) testCLI(t *testing.T, cli string) {
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(cli, args...)
		cmd.Dir = c.dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("imago %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		t.Logf("imago %s:\n%s", strings.Join(args, " "), out)
	}
	var pcrs []string
	for _, b := range c.tpm.Banks() {
		pcrs = append(pcrs, "--pcrs", b.String()+",pcrs-"+b.String()+".txt")
	}
	if len(pcrs) == 0 {
		run("bootagg", "check", "binary_runtime_measurements", "--no-tpm")
		run("bootagg", "check", "ascii_runtime_measurements", "--no-tpm")
		return
	}
	for _, list := range []string{"binary_runtime_measurements", "ascii_runtime_measurements"} {
		run(append([]string{"log", "check", list}, pcrs...)...)
		run(append([]string{"bootagg", "check", list}, pcrs...)...)
	}
	if c.has("binary_bios_measurements") {
		run("bootagg", "check", "binary_runtime_measurements", "--eventlog", "binary_bios_measurements")
	}
}
