package replay

import (
	"bytes"
	"encoding/binary"
	"iter"
	"os"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// benchList generates (once per run) a 100,000-entry ima-ng list with
// internal/genlist.
func benchList(b *testing.B) genOut {
	dir := filepath.Join(os.TempDir(), "imago-replay-bench-genlist")
	if data, err := os.ReadFile(filepath.Join(dir, "100000-0", "binary_runtime_measurements")); err == nil {
		exp, err := os.ReadFile(filepath.Join(dir, "100000-0", "expected.json"))
		if err == nil {
			var s pcr.Set
			if s.UnmarshalJSON(exp) == nil {
				return genOut{list: data, pcrs: s}
			}
		}
	}
	return genList(b, dir, 100000, 0)
}

// BenchmarkReplay checks a 100k-entry list against its PCRs in sha1 and
// sha256, reading it with the zero-allocation ima.Scanner as `imago log
// check` does.
func BenchmarkReplay(b *testing.B) {
	g := benchList(b)
	open := func() iter.Seq2[*ima.Entry, error] {
		return ima.NewScanner(bytes.NewReader(g.list), binary.LittleEndian, 20).All()
	}
	b.SetBytes(int64(len(g.list)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Check(open, g.pcrs, Options{})
		if err != nil || rep.Err() != nil {
			b.Fatal(err, rep.Err())
		}
	}
}

// BenchmarkReplayReader is the same with the allocating ima.Reader.
func BenchmarkReplayReader(b *testing.B) {
	g := benchList(b)
	open := func() iter.Seq2[*ima.Entry, error] {
		return ima.NewReader(bytes.NewReader(g.list), ima.ReaderOptions{DigestSize: 20}).All()
	}
	b.SetBytes(int64(len(g.list)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Check(open, g.pcrs, Options{})
		if err != nil || rep.Err() != nil {
			b.Fatal(err, rep.Err())
		}
	}
}
