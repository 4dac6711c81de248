package pcr

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testfixture"
)

// readFixture reads testdata/<rel> at the module root.
func readFixture(t *testing.T, rel string) []byte {
	t.Helper()
	return testfixture.Read(t, rel)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSourceFixtures(t *testing.T) {
	tests := []struct {
		file  string
		bank  Bank // for the one-bank form
		want  Format
		check Bank
		pcr   int
		value string // from the fixture's own documentation (EXPECTED.json, MANIFEST, verify.txt)
		count int    // PCRs in the checked bank
	}{
		// evmctl prints this value as "sha1: TPM PCR-10: ..." in verify.txt.
		{"realkernel/g-violations/pcrs-sha1.txt", SHA1, FormatEvmctl, SHA1, 10, "0054fd9acc8f393cb4adbe5ab36c179846cdd395", 24},
		{"realkernel/g-violations/pcrs-sha256.txt", SHA256, FormatEvmctl, SHA256, 10, "2cb0bcdacd15ca3bfc942c2fce92d1a6d4f77144230480d6b77140dbd05c2300", 24},
		// ima-verify EXPECTED.json.
		{"public/ima-verify/testfiles_vm/pcrs_sha1", 0, FormatTPM2YAML, SHA1, 10, "18852fd355074758c0391b4389c17efb08d7bbd3", 24},
		{"public/ima-verify/testfiles_vm/pcrs_sha256", 0, FormatTPM2YAML, SHA256, 10, "0976b416f6389312214cfcd54dce54f074196886497f3ea4688928c1165cf472", 24},
		// ima-verify EXPECTED.json: PCR10 70aab6cae47523fb... (prefix only documented); PCR0 from the file.
		{"public/ima-verify/at-e5460c7/testfiles_vm/pcrs", 0, FormatTPM2YAML, SHA256, 0, "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93", 24},
		// ima-spec.md §12.1 lists these sha1 PCRs from the tsspcrread dump.
		{"public/ima-evm-utils/tests/sample-tpm-2.0-pcrs-8-9", SHA1, FormatEvmctl, SHA1, 9, "a2fa191f2622bb014702013bfebfca9fe210d9e5", 24},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(filepath.Dir(tc.file))+"/"+filepath.Base(tc.file), func(t *testing.T) {
			data := readFixture(t, tc.file)
			if got := DetectFormat(data); got != tc.want {
				t.Fatalf("DetectFormat = %v, want %v", got, tc.want)
			}
			s, err := ParseSource(tc.bank, data)
			if err != nil {
				t.Fatal(err)
			}
			v, ok := s.Get(tc.check, tc.pcr)
			if !ok || hex.EncodeToString(v) != tc.value {
				t.Errorf("%s PCR %d = %x, want %s", tc.check, tc.pcr, v, tc.value)
			}
			if n := len(s.Indexes(tc.check)); n != tc.count {
				t.Errorf("%d PCRs in %s, want %d", n, tc.check, tc.count)
			}
		})
	}
}

func TestParseTPM2YAMLEmptyBank(t *testing.T) {
	// at-e5460c7/testfiles_vm/pcrs starts with an empty "sha1:" bank.
	data := readFixture(t, "public/ima-verify/at-e5460c7/testfiles_vm/pcrs")
	s, err := ParseTPM2YAML(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s[SHA1]; ok {
		t.Errorf("empty sha1 bank present: %v", s[SHA1])
	}
	v, _ := s.Get(SHA256, 10)
	if hex.EncodeToString(v)[:16] != "70aab6cae47523fb" {
		t.Errorf("PCR10 = %x, want 70aab6cae47523fb... (ima-verify EXPECTED.json)", v)
	}
}

func TestParseForms(t *testing.T) {
	ff20 := "ffffffffffffffffffffffffffffffffffffffff"
	tests := []struct {
		name string
		bank Bank
		in   string
		ok   bool
	}{
		{"sysfs spaced", SHA1, "PCR-00: FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF\n", true},
		{"evmctl lower", SHA1, "PCR-00: " + ff20 + "\n", true},
		{"crlf", SHA1, "PCR-00: " + ff20 + "\r\n", true},
		{"no newline", SHA1, "PCR-00: " + ff20, true},
		{"tsspcrread", SHA1, "pcrread: tsspcrread -halg sha1\n0: " + ff20 + "\n", true},
		{"short", SHA1, "PCR-00: ffff\n", false},
		{"sha256 size", SHA256, "PCR-00: " + ff20 + "\n", false},
		{"bad hex", SHA1, "PCR-00: " + ff20[:38] + "zz\n", false},
		{"index too big", SHA1, "PCR-64: " + ff20 + "\n", false},
		{"duplicate", SHA1, "PCR-00: " + ff20 + "\nPCR-00: " + ff20 + "\n", false},
		{"garbage", SHA1, "hello\n", false},
		{"empty", SHA1, "", false},
		{"split byte", SHA1, "PCR-00: F FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FFF\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseEvmctl(tc.bank, []byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				var se *SourceError
				if !errors.As(err, &se) || s != nil {
					t.Errorf("error %v (%T), set %v", err, err, s)
				}
				return
			}
			if v, _ := s.Get(tc.bank, 0); hex.EncodeToString(v) != ff20 {
				t.Errorf("PCR0 = %x", v)
			}
		})
	}
}

func TestParseTPM2YAMLForms(t *testing.T) {
	v1 := "0x3A3F780F11A4B49969FCAA80CD6E3957C33B2275"
	tests := []struct {
		name string
		in   string
		ok   bool
		n    int
	}{
		{"pcrread 5.x", "  sha1:\n    0 : " + v1 + "\n    10: " + v1 + "\n", true, 2},
		{"tpm2_quote", "quoted: ff54\nsignature:\n  alg: rsassa\npcrs:\n  sha1:\n    10: " + v1 + "\ncalcDigest: 00\n", true, 1},
		{"tools 3.x", "sha1 :\n  0  : 3a3f780f11a4b49969fcaa80cd6e3957c33b2275\n", true, 1},
		{"selected-pcrs list", "selected-pcrs:\n  - sha1: [ 0, 10 ]\npcrs:\n  sha1:\n    0 : " + v1 + "\n", true, 1},
		{"value without bank", "    0 : " + v1 + "\n", false, 0},
		{"bad size", "  sha256:\n    0 : " + v1 + "\n", false, 0},
		{"index 99", "  sha1:\n    99: " + v1 + "\n", false, 0},
		{"no colon", "  sha1\n", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseTPM2YAML([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err == nil && len(s.Indexes(SHA1)) != tc.n {
				t.Errorf("got %d sha1 PCRs, want %d", len(s.Indexes(SHA1)), tc.n)
			}
			if err != nil && s != nil {
				t.Errorf("non-nil set with error")
			}
		})
	}
}

func TestParseSourceNeedsBank(t *testing.T) {
	_, err := ParseSource(0, []byte("PCR-00: 3A3F780F11A4B49969FCAA80CD6E3957C33B2275\n"))
	var se *SourceError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *SourceError", err)
	}
}

func FuzzParseEvmctl(f *testing.F) {
	f.Add([]byte("PCR-00: 3A 3F 78 0F 11 A4 B4 99 69 FC AA 80 CD 6E 39 57 C3 3B 22 75\n"))
	f.Add([]byte("pcrread: tsspcrread -halg sha1\n10: 3134641a3e8a1f5f75fa850bb21c3104d6ab863b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range []Bank{SHA1, SHA256} {
			s, err := ParseEvmctl(b, data)
			if err != nil {
				if s != nil {
					t.Fatal("set with error")
				}
				continue
			}
			for _, i := range s.Indexes(b) {
				if v, _ := s.Get(b, i); len(v) != b.Size() || i > MaxIndex {
					t.Fatalf("PCR %d: %d bytes", i, len(v))
				}
			}
		}
		_, _ = ParseSource(0, data)
	})
}

func FuzzParseTPM2YAML(f *testing.F) {
	f.Add([]byte("  sha1:\n    0 : 0x3A3F780F11A4B49969FCAA80CD6E3957C33B2275\n  sha256:\n    10: 0x0000000000000000000000000000000000000000000000000000000000000000\n"))
	f.Add([]byte("pcrs:\n  sha1:\n    10: 0x3A3F780F11A4B49969FCAA80CD6E3957C33B2275\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseTPM2YAML(data)
		if err != nil {
			if s != nil {
				t.Fatal("set with error")
			}
			return
		}
		for b, m := range s {
			for i, v := range m {
				if i > MaxIndex || (b.Known() && len(v) != b.Size()) {
					t.Fatalf("%s PCR %d: %d bytes", b, i, len(v))
				}
			}
		}
		if DetectFormat(data) == FormatUnknown {
			// A dump that parses is recognisable, unless it starts with
			// lines DetectFormat cannot place (other tpm2_quote keys).
			_ = data
		}
	})
}

// FuzzParseJSON: imago's PCR JSON never panics, a failed parse returns no
// set, and a set that parses marshals back to JSON that parses to the same
// values.
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"sha256": {"10": "` + strings.Repeat("ab", 32) + `"}}`))
	f.Add([]byte(`{"entries": 3, "pcrs": {"sha1": {"0": "` + strings.Repeat("00", 20) + `", "23": "` + strings.Repeat("ff", 20) + `"}}}`))
	f.Add([]byte(`{"pcrs": 5}`))
	f.Add([]byte(`{"sha256": {"x": "zz"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJSON(data)
		if err != nil {
			if s != nil {
				t.Fatal("set with error")
			}
			return
		}
		js, err := s.MarshalJSON()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		s2, err := ParseJSON(js)
		if err != nil {
			t.Fatalf("re-parse %s: %v", js, err)
		}
		for b, m := range s {
			for i, v := range m {
				if w, ok := s2.Get(b, i); !ok || !bytes.Equal(v, w) {
					t.Fatalf("%s PCR %d: %x, then %x", b, i, v, w)
				}
			}
		}
	})
}
