package ima

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testfixture"
	"github.com/imago-ima/imago/pcr"
)

// readFixture reads testdata/<rel> of the module (a missing file fails).
func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	return testfixture.Read(t, rel)
}

// readAll reads every entry of a list with r, returning the entries and the
// final error (nil at a clean io.EOF).
func readAll(next func() (*Entry, error)) ([]*Entry, error) {
	var out []*Entry
	for {
		e, err := next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			if e != nil {
				panic("entry returned with error")
			}
			return out, err
		}
		out = append(out, e)
	}
}

func readBinary(t testing.TB, data []byte, opts ReaderOptions) ([]*Entry, *Reader) {
	t.Helper()
	r := NewReader(bytes.NewReader(data), opts)
	es, err := readAll(r.Next)
	if err != nil {
		t.Fatalf("binary read: %v", err)
	}
	return es, r
}

func readASCII(t testing.TB, data []byte, opts ReaderOptions) ([]*Entry, *ASCIIReader) {
	t.Helper()
	r := NewASCIIReader(bytes.NewReader(data), opts)
	es, err := readAll(r.Next)
	if err != nil {
		t.Fatalf("ascii read: %v", err)
	}
	return es, r
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseEvmctlPCRs reads evmctl's "PCR-NN: HEX" dump (realkernel pcrs-*.txt).
func parseEvmctlPCRs(t testing.TB, data []byte) map[int][]byte {
	t.Helper()
	out := map[int][]byte{}
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "PCR-") {
			continue
		}
		idx, val, ok := strings.Cut(l[4:], ":")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSpace(idx))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = unhex(t, strings.ToLower(strings.TrimSpace(val)))
	}
	return out
}

// replayPCR extends every entry of PCR idx into bank b from zero, using the
// entry's own template digest recomputed for b (violations: all 0xFF,
// ima-spec.md §5.2). It is a minimal replay, here only to hold our template
// data against PCRs a TPM reported.
func replayPCR(es []*Entry, b pcr.Bank, idx uint32) []byte {
	v := pcr.Zero(b)
	for _, e := range es {
		if e.PCR != idx {
			continue
		}
		d := e.TemplateDigest(b)
		if e.IsViolation() {
			d = pcr.ViolationDigest(b.Size(), true)
		}
		v = pcr.Extend(b, v, d)
	}
	return v
}

func sameEntry(a, b *Entry) bool {
	return a.PCR == b.PCR && bytes.Equal(a.Digest, b.Digest) && a.Template == b.Template && bytes.Equal(a.Data, b.Data)
}

// checkSameParse fails unless got, read from line, is want field by field:
// the fast path against the general parser.
func checkSameParse(t testing.TB, line []byte, got, want *Entry) {
	t.Helper()
	if !sameEntry(got, want) || len(got.Fields) != len(want.Fields) {
		t.Fatalf("%q: fast %+v, general %+v", line, got, want)
	}
	for i := range got.Fields {
		if got.Fields[i].ID != want.Fields[i].ID || !bytes.Equal(got.Fields[i].Data, want.Fields[i].Data) {
			t.Fatalf("%q: field %d differs", line, i)
		}
	}
}

func loadJSON(t testing.TB, rel string, v any) {
	t.Helper()
	if err := json.Unmarshal(readFixture(t, rel), v); err != nil {
		t.Fatal(err)
	}
}

func isFormatErr(err error) (*FormatError, bool) {
	var fe *FormatError
	return fe, errors.As(err, &fe)
}
