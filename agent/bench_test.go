package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// BenchmarkMeasure measures new files (4 KiB each, one per op) through the
// agent on the simulator and on swtpm, and reports the split per new
// measurement: hash, append+fdatasync, extend and exports, against the bare
// TPM2_PCR_Extend time of the same TPM measured in the same run.
// bench/measure.sh runs it.
func BenchmarkMeasure(b *testing.B) {
	b.Run("sim", func(b *testing.B) {
		if !tpm.Available("sim") {
			testenv.Missing(b, "cgo", "the TPM simulator is not built in (CGO_ENABLED=0)")
		}
		benchMeasure(b, "sim")
	})
	b.Run("swtpm", func(b *testing.B) {
		s := tpmtest.New(b, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
		s.Start()
		benchMeasure(b, s.URI)
	})
}

func benchMeasure(b *testing.B, uri string) {
	dir := b.TempDir()
	sock, _ := os.MkdirTemp("", "imago-bench")
	defer os.RemoveAll(sock)
	cfg := Config{TPM: uri, StateDir: filepath.Join(dir, "state"), RuntimeDir: filepath.Join(dir, "run"),
		Socket: filepath.Join(sock, "s"), PCR: 16, SecurityFS: filepath.Join(dir, "sfs")}
	a, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	files := filepath.Join(dir, "files")
	os.MkdirAll(files, 0o755)
	body := make([]byte, 4096)
	paths := make([]string, b.N)
	for i := range paths {
		paths[i] = filepath.Join(files, fmt.Sprint(i))
		copy(body, fmt.Sprintf("file %d", i))
		if err := os.WriteFile(paths[i], body, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	before := a.Timings()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if r := a.Measure(context.Background(), paths[i:i+1]); r[0].Status != StatusMeasured {
			b.Fatalf("%+v", r[0])
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	tm := a.Timings()
	n := float64(tm.Committed - before.Committed)
	us := func(d time.Duration) float64 { return float64(d) / 1e3 / n }
	b.ReportMetric(n/elapsed.Seconds(), "files/s")
	b.ReportMetric(us(tm.Hash-before.Hash), "hash-us/op")
	b.ReportMetric(us(tm.Append-before.Append), "append+fsync-us/op")
	b.ReportMetric(us(tm.Extend-before.Extend), "extend-us/op")
	b.ReportMetric(us(tm.Export-before.Export), "export-us/op")

	// The bare extend: the same TPM, the same banks, no list.
	a.mu.Lock()
	t, banks := a.tpm, a.banks
	a.mu.Unlock()
	d := map[pcr.Bank][]byte{}
	for _, bk := range banks {
		d[bk.Bank] = make([]byte, bk.Size)
	}
	const bare = 50
	t0 := time.Now()
	for range bare {
		if err := t.Extend(23, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(t0))/1e3/bare, "bare-extend-us/op")
}
