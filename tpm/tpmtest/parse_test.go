package tpmtest

import (
	"bytes"
	"encoding/hex"
	"os"
	"slices"
	"testing"

	"github.com/imago-ima/imago/pcr"
)

func TestParsePCRRead(t *testing.T) {
	out, err := os.ReadFile("testdata/pcrread-sha1-sha256-sha384.txt")
	if err != nil {
		t.Fatal(err)
	}
	set, err := parsePCRRead(out)
	if err != nil {
		t.Fatal(err)
	}
	// sha512 is listed with no PCRs (not allocated), so it is absent.
	if got, want := set.Banks(), []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384}; !slices.Equal(got, want) {
		t.Errorf("banks %v, want %v", got, want)
	}
	for _, b := range set.Banks() {
		if n := len(set.Indexes(b)); n != 24 {
			t.Errorf("%s: %d PCRs, want 24", b, n)
		}
	}
	// Values from PROVENANCE: python3 hashlib, independent of imago.
	want, _ := hex.DecodeString("823862f1bdf6a6066633b2c927f4cd29e4c6588022394c9fb59f41682748f95e")
	if v, _ := set.Get(pcr.SHA256, 16); !bytes.Equal(v, want) {
		t.Errorf("sha256:16 = %x, want %x", v, want)
	}
	if v, _ := set.Get(pcr.SHA384, 17); !bytes.Equal(v, bytes.Repeat([]byte{0xff}, 48)) {
		t.Errorf("sha384:17 = %x, want all 0xff", v)
	}
	for _, bad := range []string{"  sha256:\n    x: 0x00\n", "    0: 0x00\n", "  sha999:\n", "  sha1:\n    0: 0xzz\n", "garbage\n"} {
		if _, err := parsePCRRead([]byte(bad)); err == nil {
			t.Errorf("parsePCRRead(%q) succeeded", bad)
		}
	}
}

func TestParseGetcapPCRs(t *testing.T) {
	out, err := os.ReadFile("testdata/getcap-pcrs-sha1-sha256-sha384.txt")
	if err != nil {
		t.Fatal(err)
	}
	banks, err := parseGetcapPCRs(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384}; !slices.Equal(banks, want) {
		t.Errorf("banks %v, want %v", banks, want)
	}
}

func FuzzParsePCRRead(f *testing.F) {
	out, err := os.ReadFile("testdata/pcrread-sha1-sha256-sha384.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out)
	f.Fuzz(func(t *testing.T, in []byte) {
		set, err := parsePCRRead(in)
		if err != nil {
			return
		}
		for _, b := range set.Banks() {
			for _, i := range set.Indexes(b) {
				if i < 0 || i > pcr.MaxIndex {
					t.Fatalf("index %d", i)
				}
			}
		}
	})
}

func FuzzParseGetcapPCRs(f *testing.F) {
	out, err := os.ReadFile("testdata/getcap-pcrs-sha1-sha256-sha384.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out)
	f.Fuzz(func(t *testing.T, in []byte) {
		parseGetcapPCRs(in)
	})
}
