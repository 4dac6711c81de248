package tpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

var record = flag.Bool("record", false, "record FuzzResponses seeds from swtpm into testdata/fuzz")

// replayTPM answers each command with the next recorded response. The
// input is a sequence of u16-length-prefixed responses; once they run out
// every command fails.
type replayTPM struct{ in []byte }

func (r *replayTPM) Send([]byte) ([]byte, error) {
	if len(r.in) < 2 {
		return nil, errors.New("replay: no more responses")
	}
	n := int(binary.BigEndian.Uint16(r.in))
	r.in = r.in[2:]
	if n > len(r.in) {
		n = len(r.in)
	}
	rsp := bytes.Clone(r.in[:n])
	r.in = r.in[n:]
	return rsp, nil
}

func (r *replayTPM) Close() error { return nil }

// recordTPM passes commands through and records the responses in the
// replayTPM input format.
type recordTPM struct {
	transport.TPMCloser
	out []byte
}

func (r *recordTPM) Send(cmd []byte) ([]byte, error) {
	rsp, err := r.TPMCloser.Send(cmd)
	if err == nil {
		r.out = binary.BigEndian.AppendUint16(r.out, uint16(len(rsp)))
		r.out = append(r.out, rsp...)
	}
	return rsp, err
}

// fuzzBanks are the banks the fuzz target asks for: the known ones and one
// (SHA3-256, 0x0027) imago cannot compute.
var fuzzBanks = []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384, 0x0027}

// fuzzPCRs are the PCRs the fuzz target reads: more than one
// TPM2_PCR_Read returns with two banks, few enough to keep seeds small.
var fuzzPCRs = []int{0, 7, 8, 10, 16, 23}

// exercise runs what the agent does on a TPM: banks, a PCR read, an extend.
func exercise(tp *TPM) (banks []pcr.Bank, set pcr.Set, readErr error) {
	if err := tp.start(); err != nil {
		return nil, nil, err
	}
	banks, _ = tp.Banks()
	if len(banks) == 0 {
		banks = fuzzBanks
	}
	set, readErr = tp.ReadPCRs(banks, fuzzPCRs)
	ds := make(map[pcr.Bank][]byte)
	for _, b := range banks {
		if n, err := tp.DigestSize(b); err == nil {
			ds[b] = make([]byte, n)
		}
	}
	tp.Extend(16, ds)
	return banks, set, readErr
}

// TestRecordFuzzSeeds writes real swtpm response sequences as seeds for
// FuzzResponses when run with -record.
func TestRecordFuzzSeeds(t *testing.T) {
	if !*record {
		return // run with -record to refresh testdata/fuzz/FuzzResponses
	}
	for _, banks := range [][]string{{"sha256"}, {"sha1", "sha256", "sha384"}} {
		s := tpmtest.New(t, tpmtest.Options{Banks: banks})
		s.Start()
		tp, err := Open(s.URI)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recordTPM{TPMCloser: tp.t}
		tp.t = rec
		if _, _, err := exercise(tp); err != nil {
			t.Fatal(err)
		}
		tp.Close()
		name := filepath.Join("testdata", "fuzz", "FuzzResponses", "swtpm-"+fmt.Sprint(len(banks))+"banks")
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", rec.out)
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzResponses feeds arbitrary TPM responses to Open's start-up, Banks,
// ReadPCRs and Extend, through go-tpm's response parsing. Nothing may panic
// or loop, and a read that succeeds holds every PCR asked for, at a sane
// digest size.
func FuzzResponses(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 10, 0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		tp := &TPM{name: "fuzz", t: &replayTPM{in: in}, sizes: make(map[pcr.Bank]int)}
		banks, set, err := exercise(tp)
		if err != nil || set == nil {
			return
		}
		for _, b := range banks {
			for _, i := range fuzzPCRs {
				v, ok := set.Get(b, i)
				if !ok {
					t.Fatalf("ReadPCRs succeeded without %s PCR %d", b, i)
				}
				if len(v) == 0 || len(v) > maxDigestSize || (b.Known() && len(v) != b.Size()) {
					t.Fatalf("%s PCR %d: %d bytes", b, i, len(v))
				}
			}
		}
	})
}
