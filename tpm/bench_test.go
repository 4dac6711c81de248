package tpm

import (
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// BenchmarkExtend prices one TPM2_PCR_Extend carrying a sha1 and a sha256
// digest (the agent's per-measurement TPM cost, "bare extend time") on the
// in-process simulator and on swtpm over tcp and unix sockets, with the
// default connection policy (held across a burst) and connecting per command.
func BenchmarkExtend(b *testing.B) {
	ds := map[pcr.Bank][]byte{pcr.SHA1: make([]byte, 20), pcr.SHA256: make([]byte, 32)}
	ds[pcr.SHA1][0], ds[pcr.SHA256][0] = 1, 1
	run := func(b *testing.B, tp *TPM) {
		b.ReportAllocs()
		for b.Loop() {
			if err := tp.Extend(16, ds); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sim", func(b *testing.B) {
		if !simBuiltIn {
			testenv.Missing(b, "cgo", "the TPM simulator is not built in (CGO_ENABLED=0)")
		}
		tp, err := Open("sim")
		if err != nil {
			b.Fatal(err)
		}
		defer tp.Close()
		run(b, tp)
	})
	for _, c := range []struct {
		name         string
		unix, percmd bool
	}{
		{"swtpm-tcp", false, false},
		{"swtpm-tcp-connect-per-command", false, true},
		{"swtpm-unix", true, false},
		{"swtpm-unix-connect-per-command", true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := tpmtest.New(b, tpmtest.Options{Banks: []string{"sha1", "sha256"}, Unix: c.unix})
			s.Start()
			tp, err := Open(s.URI)
			if err != nil {
				b.Fatal(err)
			}
			defer tp.Close()
			if c.percmd {
				setIdle(tp, 0)
			}
			run(b, tp)
		})
	}
}
