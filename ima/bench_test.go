package ima

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/imago-ima/imago/internal/testfixture"
)

// benchList reads data with newReader b.N times and reports ns/entry and
// allocs/entry.
func benchList(b *testing.B, data []byte, next func(io.Reader) func() (*Entry, error)) {
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	entries := 0
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for b.Loop() {
		n := next(bytes.NewReader(data))
		entries = 0
		for {
			_, err := n()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			entries++
		}
	}
	runtime.ReadMemStats(&ms1)
	total := float64(entries) * float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/entry")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/total, "allocs/entry")
}

func binaryNext(r io.Reader) func() (*Entry, error) {
	return NewReader(r, ReaderOptions{}).Next
}

func asciiNext(r io.Reader) func() (*Entry, error) {
	return NewASCIIReader(r, ReaderOptions{}).Next
}

// generatedList builds n ima-ng / ima-sig entries with realistic paths.
func generatedList(b *testing.B, n int) ([]byte, []byte) {
	var bin, asc []byte
	sum := make([]byte, 32)
	for i := range n {
		binary.LittleEndian.PutUint64(sum, uint64(i))
		var e *Entry
		var err error
		name := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/package-%d/lib%d.so.1", i%977, i)
		if i%10 == 0 {
			e, err = NewEntry(TemplateIMASig, nil, 10, DigestNG(HashSHA256, sum), NameNG(name), Sig(nil))
		} else {
			e, err = NewEntry(TemplateIMANG, nil, 10, DigestNG(HashSHA256, sum), NameNG(name))
		}
		if err != nil {
			b.Fatal(err)
		}
		bin, _ = AppendBinary(bin, e, binary.LittleEndian)
		asc = AppendASCII(asc, e)
	}
	return bin, asc
}

// BenchmarkReader reads the largest real list of the corpus (ima-verify,
// 4289 ima-ng entries, sha256 template digests) and a generated 100k-entry
// list.
func BenchmarkReader(b *testing.B) {
	b.Run("ima-verify-4289", func(b *testing.B) {
		data := testfixture.ReadExtra(b, "public/ima-verify/at-e5460c7/testfiles_vm/binary_runtime_measurements_sha256")
		benchList(b, data, binaryNext)
	})
	b.Run("generated-100k", func(b *testing.B) {
		bin, _ := generatedList(b, 100000)
		benchList(b, bin, binaryNext)
	})
}

func scannerNext(order binary.ByteOrder, dsize int) func(io.Reader) func() (*Entry, error) {
	return func(r io.Reader) func() (*Entry, error) { return NewScanner(r, order, dsize).Next }
}

// BenchmarkScanner is BenchmarkReader for the Scanner (entries not owned,
// no Fields).
func BenchmarkScanner(b *testing.B) {
	b.Run("ima-verify-4289", func(b *testing.B) {
		data := testfixture.ReadExtra(b, "public/ima-verify/at-e5460c7/testfiles_vm/binary_runtime_measurements_sha256")
		benchList(b, data, scannerNext(binary.LittleEndian, 32))
	})
	b.Run("generated-100k", func(b *testing.B) {
		bin, _ := generatedList(b, 100000)
		benchList(b, bin, scannerNext(binary.LittleEndian, 20))
	})
}

// BenchmarkASCIIReader is BenchmarkReader for the ASCII form.
func BenchmarkASCIIReader(b *testing.B) {
	b.Run("ima-verify-4289", func(b *testing.B) {
		data := testfixture.ReadExtra(b, "public/ima-verify/at-e5460c7/testfiles_vm/ascii_runtime_measurements_sha256")
		benchList(b, data, asciiNext)
	})
	b.Run("generated-100k", func(b *testing.B) {
		_, asc := generatedList(b, 100000)
		benchList(b, asc, asciiNext)
	})
}

// BenchmarkAppendBinary writes the generated list back.
func BenchmarkAppendBinary(b *testing.B) {
	bin, _ := generatedList(b, 10000)
	es, _ := readBinary(b, bin, ReaderOptions{})
	b.ReportAllocs()
	b.SetBytes(int64(len(bin)))
	var out []byte
	for b.Loop() {
		out = out[:0]
		for _, e := range es {
			out, _ = AppendBinary(out, e, binary.LittleEndian)
		}
	}
}

func BenchmarkASCIIScanner(b *testing.B) {
	_, asc := generatedList(b, 100000)
	benchList(b, asc, func(r io.Reader) func() (*Entry, error) { return NewASCIIScanner(r, ReaderOptions{}).Next })
}

// BenchmarkParseLineAppend: the lines of the generated list parsed one by
// one as package verify's workers do, with ParseLine (the entry built in
// the reader's scratch) and with ParseLineAppend (built onto the caller's
// buffer, as a batch keeps it).
func BenchmarkParseLineAppend(b *testing.B) {
	_, asc := generatedList(b, 100000)
	lines := bytes.Split(bytes.TrimSuffix(asc, []byte("\n")), []byte("\n"))
	run := func(b *testing.B, parse func(r *ASCIIReader, buf, line []byte) []byte) {
		b.ReportAllocs()
		b.SetBytes(int64(len(asc)))
		r := NewASCIIScanner(bytes.NewReader(nil), ReaderOptions{})
		buf := make([]byte, 0, 1<<20)
		for b.Loop() {
			buf = buf[:0]
			for _, l := range lines {
				if len(buf) > cap(buf)-4096 {
					buf = buf[:0]
				}
				buf = parse(r, buf, l)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(len(lines))/float64(b.N), "ns/entry")
	}
	b.Run("ParseLine", func(b *testing.B) {
		run(b, func(r *ASCIIReader, buf, line []byte) []byte {
			e, err := r.ParseLine(line)
			if err != nil {
				b.Fatal(err)
			}
			return append(append(buf, e.Digest...), e.Data...) // the copy a batch makes
		})
	})
	b.Run("ParseLineAppend", func(b *testing.B) {
		run(b, func(r *ASCIIReader, buf, line []byte) []byte {
			_, out, err := r.ParseLineAppend(buf, line)
			if err != nil {
				b.Fatal(err)
			}
			return out
		})
	})
}
