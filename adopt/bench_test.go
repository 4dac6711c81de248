package adopt

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
)

// BenchmarkFindPrefix: how long a restart takes to find where the TPM
// stands in a 100,000-entry list (one replay in every bank; sha1+sha256).
func BenchmarkFindPrefix(b *testing.B) {
	es := entries(b, 0, 100_000, 5, 50_000)
	banks := []Bank{{pcr.SHA1, 20}, {pcr.SHA256, 32}}
	tpmVals := make(pcr.Set)
	for _, bk := range banks {
		v := pcr.Zero(bk.Alg)
		for _, e := range es[:99_000] {
			v = pcr.Extend(bk.Alg, v, e.ExtendDigest(bk.Alg, bk.Size))
		}
		tpmVals.Put(bk.Alg, 10, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		k, err := FindPrefix(seq(es), tpmVals, banks)
		if err != nil || k != 99_000 {
			b.Fatal(k, err)
		}
	}
	b.ReportMetric(float64(len(es))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkCatchUp: adoption's catch-up on swtpm (sha1+sha256), entries
// per second, side by side with the floor (bare TPM2_PCR_Extend calls
// through the same transport, nothing else) and with what a script would
// do (one tpm2_pcrextend process per entry). Each round starts from a
// freshly powered-on TPM.
func BenchmarkCatchUp(b *testing.B) {
	const n = 500
	testenv.Tool(b, "swtpm")
	es := entries(b, 16, n-16, 20, 200)
	banks := []Bank{{pcr.SHA1, 20}, {pcr.SHA256, 32}}
	run := func(b *testing.B, round func(uri string, s interface{ TCTI() string })) {
		s := swtpm(b, "sha1", "sha256")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s.Stop()
			s.Start()
			b.StartTimer()
			round(s.URI, s)
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	}
	b.Run("imago-adopt", func(b *testing.B) {
		run(b, func(uri string, _ interface{ TCTI() string }) {
			fs := newFakeFS(b)
			fs.append(es...)
			a, err := New(Config{SecurityFS: fs.root, TPM: uri})
			if err != nil {
				b.Fatal(err)
			}
			l, err := openKernelList(fs.root)
			if err != nil {
				b.Fatal(err)
			}
			defer l.close()
			t, err := tpm.Open(uri)
			if err != nil {
				b.Fatal(err)
			}
			defer t.Close()
			first, _ := a.firstEntry(l)
			f := &follower{a: a, l: l, t: t, banks: banks, chain: newChain(banks, zeros(banks), nil), touched: map[int]bool{int(first.PCR): true}}
			if err := f.catchUp(b.Context()); err != nil || f.n != n {
				b.Fatal(f.n, err)
			}
		})
	})
	b.Run("bare-extend", func(b *testing.B) {
		all := append(bypassEntries(b), es...)
		run(b, func(uri string, _ interface{ TCTI() string }) {
			t, err := tpm.Open(uri)
			if err != nil {
				b.Fatal(err)
			}
			defer t.Close()
			for _, e := range all {
				if err := t.Extend(10, Digests(e, banks)); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("tpm2_pcrextend", func(b *testing.B) {
		tool := testenv.Tool(b, "tpm2_pcrextend")
		all := append(bypassEntries(b), es...)
		run(b, func(_ string, s interface{ TCTI() string }) {
			for _, e := range all {
				d := Digests(e, banks)
				spec := fmt.Sprintf("10:sha1=%x,sha256=%x", d[pcr.SHA1], d[pcr.SHA256])
				if out, err := exec.Command(tool, "-T", s.TCTI(), spec).CombinedOutput(); err != nil {
					b.Fatalf("%v\n%s", err, out)
				}
			}
		})
	})
}

func zeros(banks []Bank) pcr.Set {
	s := make(pcr.Set)
	for _, b := range banks {
		for i := range numPCRs {
			s.Put(b.Alg, i, pcr.Zero(b.Alg))
		}
	}
	return s
}

func bypassEntries(b *testing.B) []*ima.Entry {
	b.Helper()
	es := readList(b, "testdata/bypass-6.1/binary_runtime_measurements")
	return es
}
