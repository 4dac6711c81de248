package treehash

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/cputime"
)

// BenchmarkHash hashes a tree of many small files and a few big ones with
// sha256 on every core, warm in the page cache: $IMAGO_BENCH_TREE if set
// (bench/verify.sh's tree: go test -bench Hash -benchtime 5x with
// IMAGO_BENCH_TREE=/tmp/imago-bench-verify/tree-20000-4-200), else 4,000
// files of 1 to 8 KiB and 3 of 24 MiB made here. MB/s is the whole rate;
// cpu-ns/MB the CPU time (every thread, system time included) per MB.
func BenchmarkHash(b *testing.B) {
	root := os.Getenv("IMAGO_BENCH_TREE")
	if root == "" {
		root = b.TempDir()
		buf := make([]byte, 24<<20)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for i := range 4000 {
			d := filepath.Join(root, "usr/lib", fmt.Sprintf("pkg%03d", i%100))
			os.MkdirAll(d, 0o755)
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%06d", i)), buf[i:i+1024+(i*7919)%7168], 0o644); err != nil {
				b.Fatal(err)
			}
		}
		os.MkdirAll(filepath.Join(root, "usr/share/big"), 0o755)
		for i := range 3 {
			if err := os.WriteFile(filepath.Join(root, "usr/share/big", fmt.Sprint("blob", i)), buf, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	opts := Options{Alg: ima.HashSHA256, AllOwners: true}
	files, _, err := Hash(context.Background(), root, opts) // warms the page cache
	if err != nil || len(files) == 0 {
		b.Fatal(err, len(files))
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	b.SetBytes(total)
	b.ReportAllocs()
	m := cputime.Start()
	for b.Loop() {
		if _, _, err := Hash(context.Background(), root, opts); err != nil {
			b.Fatal(err)
		}
	}
	m.Report(b, float64(total)/1e6*float64(b.N), "MB")
}
