package ima

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"
)

// scanFixtures are binary lists the Scanner must read exactly as Reader does.
var scanFixtures = []string{
	"realkernel/a-ima-ng/binary_runtime_measurements",
	"realkernel/g-violations/binary_runtime_measurements",
	"realkernel/h-ima-buf/binary_runtime_measurements",
	"public/go-ima/tests/ima_ng",
	"public/tpm2-tss/test/data/fapi/eventlog/sml-ima-sha1.bin",
	"public/tpm2-tss/test/data/fapi/eventlog/sml-ima-sig-sha256.bin",
}

func TestScannerMatchesReader(t *testing.T) {
	for _, f := range scanFixtures {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data := readFixture(t, f)
			if n := compareScan(t, data, ReaderOptions{}); n == 0 {
				t.Fatal("no entries")
			}
		})
	}
}

// compareScan reads data with Reader and Scanner and fails on any
// difference; it returns the number of entries.
func compareScan(t *testing.T, data []byte, opts ReaderOptions) int {
	t.Helper()
	order, dsize, err := DetectBinary(data, opts)
	if err != nil {
		return 0
	}
	r := NewReader(bytes.NewReader(data), ReaderOptions{Order: order, DigestSize: dsize, AllowUnknownTemplates: true})
	s := NewScanner(bytes.NewReader(data), order, dsize)
	n := 0
	for {
		want, werr := r.Next()
		got, gerr := s.Next()
		if werr != nil || gerr != nil {
			if werr == io.EOF && gerr != io.EOF {
				t.Fatalf("entry %d: reader ended, scanner: %v", n, gerr)
			}
			if werr == nil {
				t.Fatalf("entry %d: scanner %v, reader ok", n, gerr)
			}
			if gerr == nil && framingError(werr) {
				t.Fatalf("entry %d: reader %v, scanner ok", n, werr)
			}
			// Both read through one framer: a framing error is the same
			// error, offset and field, and so is the end.
			if framingError(werr) && (werr.Error() != gerr.Error() || r.Offset() != s.Offset() || r.TrailingNewline() != s.TrailingNewline()) {
				t.Fatalf("entry %d: reader %v at %d, scanner %v at %d", n, werr, r.Offset(), gerr, s.Offset())
			}
			// Otherwise the Reader stopped on a check that only it makes
			// (template names, field layout).
			return n
		}
		if want.PCR != got.PCR || !bytes.Equal(want.Digest, got.Digest) || want.Template != got.Template || !bytes.Equal(want.Data, got.Data) {
			t.Fatalf("entry %d differs:\nreader  %d %x %s %d bytes\nscanner %d %x %s %d bytes", n, want.PCR, want.Digest, want.Template, len(want.Data), got.PCR, got.Digest, got.Template, len(got.Data))
		}
		n++
	}
}

// TestScannerTPM2TSS reads the tpm2-tss sml-*.bin lists with the Scanner:
// the entry counts, the stray final 0x0a of two of them and the byte offsets
// of the cut records are those counted from the files (see
// TestTPM2TSS), the same as Reader's.
func TestScannerTPM2TSS(t *testing.T) {
	dir := "public/tpm2-tss/test/data/fapi/eventlog/"
	for _, tc := range []struct {
		file     string
		dsize    int
		entries  int
		trailing bool
		cutAt    int64
		field    string
	}{
		{"sml-ima-sha1.bin", 20, 12, true, 0, ""},
		{"sml-ima-ng-sha1.bin", 20, 6, true, 0, ""},
		{"sml-ima-sig-sha256.bin", 20, 9, false, 0x3db, "record header"},
		{"sml-ima-sha1-invalidated.bin", 20, 1, false, 0, ""},
		// The only record declares 49 bytes of template data and has 48:
		// the error names the start of its template data, 8+20+6+4 bytes in.
		{"sml-ima-ng-sha1-invalidated.bin", 20, 0, false, 0x26, "template data"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := readFixture(t, dir+tc.file)
			s := NewScanner(bytes.NewReader(data), binary.LittleEndian, tc.dsize)
			n := 0
			var err error
			for _, err = range s.All() {
				if err != nil {
					break
				}
				n++
			}
			if n != tc.entries || s.TrailingNewline() != tc.trailing {
				t.Fatalf("%d entries, trailing newline %v; want %d, %v", n, s.TrailingNewline(), tc.entries, tc.trailing)
			}
			if tc.cutAt == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if want := int64(len(data)); s.Offset() != want {
					t.Fatalf("offset %d, want %d", s.Offset(), want)
				}
				return
			}
			fe, ok := isFormatErr(err)
			if !ok || !errors.Is(err, io.ErrUnexpectedEOF) || fe.Offset != tc.cutAt || fe.Entry != tc.entries || fe.Field != tc.field {
				t.Fatalf("err = %v, want a cut %s at 0x%x, entry %d", err, tc.field, tc.cutAt, tc.entries)
			}
		})
	}
}

func TestScannerLargeRecord(t *testing.T) {
	// One ima-buf-like record larger than the scanner's buffer.
	big := make([]byte, scanBuffer+100)
	e, err := NewEntry("ima-buf", binary.LittleEndian, 10, DigestNG(HashSHA256, make([]byte, 32)), NameNG("big"), Buf(big))
	if err != nil {
		t.Fatalf("NewEntry: %v", err)
	}
	var b bytes.Buffer
	w := NewWriter(&b, WriterOptions{Order: binary.LittleEndian})
	if err := w.Write(e); err != nil {
		t.Fatalf("writer: %v", err)
	}
	data := append(bytes.Clone(b.Bytes()), b.Bytes()...)
	if n := compareScan(t, data, ReaderOptions{}); n != 2 {
		t.Fatalf("%d entries", n)
	}
	s := NewScanner(bytes.NewReader(data[:len(data)-1]), binary.LittleEndian, 20)
	s.Next()
	if _, err := s.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut record: %v", err)
	}
}

func FuzzScanner(f *testing.F) {
	for _, p := range scanFixtures[:3] {
		data := readFixture(f, p)
		f.Add(data[:min(len(data), 600)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareScan(t, data, ReaderOptions{})
		for _, o := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			s := NewScanner(bytes.NewReader(data), o, 20)
			for e, err := range s.All() {
				if (e == nil) == (err == nil) {
					t.Fatal("entry and error both set or both nil")
				}
			}
		}
	})
}

func TestScanList(t *testing.T) {
	for _, f := range []string{"realkernel/g-violations/binary_runtime_measurements", "realkernel/g-violations/ascii_runtime_measurements"} {
		data := readFixture(t, f)
		var want [][]byte
		for e, err := range NewListReader(bytes.NewReader(data), ReaderOptions{}).All() {
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, append(bytes.Clone(e.Digest), e.Data...))
		}
		n := 0
		for e, err := range ScanList(bytes.NewReader(data), ReaderOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			if n >= len(want) || !bytes.Equal(want[n], append(bytes.Clone(e.Digest), e.Data...)) {
				t.Fatalf("%s: entry %d differs", f, n)
			}
			n++
		}
		if n != len(want) || n != 20 {
			t.Fatalf("%s: %d entries, reader %d", f, n, len(want))
		}
	}
	for range ScanList(bytes.NewReader(nil), ReaderOptions{}) {
		t.Fatal("entry from empty input")
	}
}

// framingError reports whether a Reader error is about record framing, which
// the Scanner checks too.
func framingError(err error) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		return true
	}
	switch fe.Field {
	case "record header", "pcr", "template name length", "template data length", "n length":
		return true
	}
	return false
}

// Scanner's contract (its doc comment, and the README's replay figures):
// nothing is allocated per record once it runs, template names included.
func TestScannerAllocs(t *testing.T) {
	one := readFixture(t, "realkernel/h-ima-buf/binary_runtime_measurements")
	var data []byte
	for range 200 { // 3,800 records: ima-ng and ima-buf, names that change
		data = append(data, one...)
	}
	s := NewScanner(bytes.NewReader(data), binary.LittleEndian, 20)
	for range 19 { // warm up: the first pass over every template name
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
	}
	// One measured run of 500 records: AllocsPerRun divides by the runs,
	// so even one allocation in the 500 must show. It counts the whole
	// process's allocations, and a runtime goroutine running meanwhile can
	// add one: an allocation of the scanner's shows in both tries, a
	// stray one does not. (Each try reads 1,000 records, its warm-up run
	// included: 2,019 of the 3,800.)
	var n float64
	for range 2 {
		if n = testing.AllocsPerRun(1, func() {
			for range 500 {
				if _, err := s.Next(); err != nil {
					t.Fatal(err)
				}
			}
		}); n == 0 {
			return
		}
	}
	t.Errorf("%v allocations in 500 records, in each of 2 tries", n)
}

// lookupHashAlg's doc comment: no allocation.
func TestLookupHashAlgAllocs(t *testing.T) {
	names := [][]byte{[]byte("sha256"), []byte("sha1"), []byte("sm3-256"), []byte("nope")}
	if n := testing.AllocsPerRun(1, func() {
		for i := range 100 {
			lookupHashAlg(names[i&3])
		}
	}); n != 0 {
		t.Errorf("%v allocations in 100 calls", n)
	}
}

// The README's bound on one record's template data.
func TestTemplateDataBound(t *testing.T) {
	if MaxTemplateDataLen != 64<<20 {
		t.Errorf("MaxTemplateDataLen = %d, the README says 64 MiB", MaxTemplateDataLen)
	}
}
