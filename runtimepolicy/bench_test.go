package runtimepolicy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"

	"github.com/imago-ima/imago/internal/cputime"
)

// benchPolicy is a policy of n paths, one sha256 digest each, as
// bench/verifygen writes it, and its paths.
func benchPolicy(b *testing.B, n int) ([]byte, [][]byte) {
	b.Helper()
	p := New()
	var paths [][]byte
	var seed [8]byte
	for i := range n {
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		sum := sha256.Sum256(seed[:])
		path := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/pkg%04d/lib%07d.so.%d", i%9973, i, i%7)
		p.Digests.Set(path, []string{hex.EncodeToString(sum[:])})
		paths = append(paths, []byte(path))
	}
	return p.Marshal(), paths
}

// BenchmarkCompile reads a 200,000-path policy into its tables (the JSON
// lexed on one goroutine, indexed on another).
func BenchmarkCompile(b *testing.B) {
	const n = 200000
	doc, _ := benchPolicy(b, n)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	runtime.GC() // the CPU time is the compile's, not the marking of benchPolicy's garbage
	m := cputime.Start()
	for b.Loop() {
		c, err := Compile(bytes.NewReader(doc), Options{SizeHint: int64(len(doc))})
		if err != nil || c.tables[kindDigests].Len() != n {
			b.Fatal(err)
		}
	}
	m.Report(b, float64(n)*float64(b.N), "path")
}

// BenchmarkLookup: Digests one path at a time, and WarmPaths then
// DigestsHashed over batches of 512 as package verify does, in a table of
// 200,000 paths (larger than the caches).
func BenchmarkLookup(b *testing.B) {
	const n = 200000
	doc, paths := benchPolicy(b, n)
	c, err := Compile(bytes.NewReader(doc), Options{})
	if err != nil {
		b.Fatal(err)
	}
	// Visit the paths in an order unrelated to the policy's.
	order := make([][]byte, n)
	for i := range order {
		order[i] = paths[(i*7919)%n]
	}
	b.Run("one", func(b *testing.B) {
		m := cputime.Start()
		for b.Loop() {
			for _, p := range order {
				if _, ok := c.Digests(p); !ok {
					b.Fatal("not found")
				}
			}
		}
		m.Report(b, float64(n)*float64(b.N), "lookup")
	})
	b.Run("warmed", func(b *testing.B) {
		hashes := make([]uint64, 512)
		m := cputime.Start()
		for b.Loop() {
			for i := 0; i < n; i += 512 {
				batch := order[i:min(i+512, n)]
				c.WarmPaths(batch, hashes)
				for j, p := range batch {
					if _, ok := c.DigestsHashed(p, hashes[j]); !ok {
						b.Fatal("not found")
					}
				}
			}
		}
		m.Report(b, float64(n)*float64(b.N), "lookup")
	})
}
