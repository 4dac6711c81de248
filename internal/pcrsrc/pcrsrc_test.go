package pcrsrc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// fixture returns testdata/<rel> at the module root (a missing file fails).
func fixture(t *testing.T, rel string) string {
	t.Helper()
	return testfixture.Path(t, rel)
}

func hexOf(t *testing.T, s pcr.Set, b pcr.Bank, i int) string {
	t.Helper()
	v, ok := s.Get(b, i)
	if !ok {
		t.Fatalf("no %s PCR %d in %v", b, i, s.Banks())
	}
	return hex.EncodeToString(v)
}

func TestLoadFixtures(t *testing.T) {
	g := fixture(t, "realkernel/g-violations")
	sha1File := filepath.Join(g, "pcrs-sha1.txt")
	yaml := fixture(t, "public/ima-verify/testfiles_vm/pcrs_sha256")

	// evmctl form with its bank: verify.txt shows evmctl reading this value.
	s, err := Load(context.Background(), "sha1,"+sha1File, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hexOf(t, s, pcr.SHA1, 10); got != "0054fd9acc8f393cb4adbe5ab36c179846cdd395" {
		t.Errorf("PCR10 %s", got)
	}
	// evmctl form without a bank: an error that asks for ALG,FILE.
	if _, err := Load(context.Background(), sha1File, nil); err == nil || !strings.Contains(err.Error(), "ALG,FILE") || !strings.Contains(err.Error(), sha1File) {
		t.Errorf("no-bank error: %v", err)
	}
	// tpm2_pcrread YAML, all banks, and filtered by ALG.
	s, err = Load(context.Background(), yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hexOf(t, s, pcr.SHA256, 10); got != "0976b416f6389312214cfcd54dce54f074196886497f3ea4688928c1165cf472" {
		t.Errorf("PCR10 %s", got)
	}
	if _, err := Load(context.Background(), "sha1,"+yaml, nil); err == nil {
		t.Error("sha1 from a sha256-only dump accepted")
	}
	// stdin
	data, _ := os.ReadFile(yaml)
	s, err = Load(context.Background(), "-", bytes.NewReader(data))
	if err != nil || len(s[pcr.SHA256]) != 24 {
		t.Fatalf("stdin: %v %v", err, s)
	}
	// imago JSON
	js := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(js, []byte(`{"sha256":{"10":"0976b416f6389312214cfcd54dce54f074196886497f3ea4688928c1165cf472"}}`), 0o644)
	if s, err = Load(context.Background(), js, nil); err != nil || hexOf(t, s, pcr.SHA256, 10)[:8] != "0976b416" {
		t.Fatalf("json: %v", err)
	}
}

func TestLoadErrorsNameLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.txt")
	os.WriteFile(p, []byte("PCR-00: 3A3F780F11A4B49969FCAA80CD6E3957C33B2275\nPCR-01: zz\n"), 0o644)
	_, err := Load(context.Background(), "sha1,"+p, nil)
	var se *pcr.SourceError
	if !errors.As(err, &se) || se.Line != 2 || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(context.Background(), "md5,"+p, nil); err == nil {
		t.Error("md5 accepted")
	}
	if _, err := Load(context.Background(), filepath.Join(dir, "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

// TestLoadSysfs builds a folder shaped like /sys/class/tpm/tpm0 (kernel
// tpm-sysfs.c prints each PCR as upper-case hex and a newline).
func TestLoadSysfs(t *testing.T) {
	dir := t.TempDir()
	for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
		d := filepath.Join(dir, "pcr-"+b.String())
		os.MkdirAll(d, 0o755)
		for i := range 24 {
			v := bytes.Repeat([]byte{byte(i)}, b.Size())
			os.WriteFile(filepath.Join(d, fmt.Sprint(i)), []byte(strings.ToUpper(hex.EncodeToString(v))+"\n"), 0o444)
		}
	}
	s, err := Load(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s[pcr.SHA1]) != 24 || len(s[pcr.SHA256]) != 24 || hexOf(t, s, pcr.SHA256, 10) != strings.Repeat("0a", 32) {
		t.Fatalf("%v", s)
	}
	if s, err = Load(context.Background(), "sha256,"+dir, nil); err != nil || len(s) != 1 {
		t.Fatalf("%v %v", err, s)
	}
	// TPM 1.2 device/pcrs
	dir12 := t.TempDir()
	os.MkdirAll(filepath.Join(dir12, "device"), 0o755)
	os.WriteFile(filepath.Join(dir12, "device", "pcrs"), []byte("PCR-00: 3A 3F 78 0F 11 A4 B4 99 69 FC AA 80 CD 6E 39 57 C3 3B 22 75\n"), 0o444)
	if s, err = Load(context.Background(), dir12, nil); err != nil || hexOf(t, s, pcr.SHA1, 0) != "3a3f780f11a4b49969fcaa80cd6e3957c33b2275" {
		t.Fatalf("%v %v", err, s)
	}
}

// TestTPM2PCRReadSwtpm runs the installed tpm2_pcrread against a swtpm, after
// extending PCR 10 in both banks with tpm2_pcrextend, and parses its output.
func TestTPM2PCRReadSwtpm(t *testing.T) {
	testenv.SkipShort(t)
	pcrread, pcrextend := testenv.Tool(t, "tpm2_pcrread"), testenv.Tool(t, "tpm2_pcrextend")
	sw := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	sw.Start()
	tcti := sw.TCTI()
	d1 := bytes.Repeat([]byte{0x11}, 20)
	d2 := bytes.Repeat([]byte{0x22}, 32)
	arg := fmt.Sprintf("10:sha1=%x,sha256=%x", d1, d2)
	if out, err := exec.Command(pcrextend, "-T", tcti, arg).CombinedOutput(); err != nil {
		t.Fatalf("tpm2_pcrextend: %v\n%s", err, out)
	}
	out, err := exec.Command(pcrread, "-T", tcti, "sha1:all+sha256:all").Output()
	if err != nil {
		t.Fatalf("tpm2_pcrread: %v", err)
	}
	p := filepath.Join(t.TempDir(), "pcrread.yaml")
	os.WriteFile(p, out, 0o644)
	s, err := Load(context.Background(), p, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The TPM extend: H(zeros || digest).
	w1 := sha1.Sum(append(make([]byte, 20), d1...))
	w2 := sha256.Sum256(append(make([]byte, 32), d2...))
	if hexOf(t, s, pcr.SHA1, 10) != hex.EncodeToString(w1[:]) || hexOf(t, s, pcr.SHA256, 10) != hex.EncodeToString(w2[:]) {
		t.Errorf("PCR10 sha1 %s sha256 %s\n%s", hexOf(t, s, pcr.SHA1, 10), hexOf(t, s, pcr.SHA256, 10), out)
	}
	if len(s[pcr.SHA1]) != 24 || len(s[pcr.SHA256]) != 24 {
		t.Errorf("banks: %d %d PCRs", len(s[pcr.SHA1]), len(s[pcr.SHA256]))
	}
}
