package ima

import (
	"bytes"
	"testing"
	"unsafe"
)

// FuzzParseLineAppend: ParseLineAppend (the fast path appending to the
// caller's buffer, else the general parser) reads every line as the
// general parser alone does; what it appends is the entry's template
// digest and then its data, which the entry aliases; the caller's bytes
// stay.
func FuzzParseLineAppend(f *testing.F) {
	f.Fuzz(func(t *testing.T, prefix, line []byte) {
		slow := NewASCIIReader(bytes.NewReader(nil), ReaderOptions{})
		slow.noFast = true
		want, werr := slow.ParseLine(line)
		r := NewASCIIScanner(bytes.NewReader(nil), ReaderOptions{})
		in := append(bytes.Clone(prefix), "spare room"...)[:len(prefix)]
		e, out, err := r.ParseLineAppend(in, line)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: error %v, general parser's %v", line, err, werr)
		}
		if !bytes.Equal(out[:len(prefix)], prefix) {
			t.Fatalf("%q: the caller's bytes changed", line)
		}
		if err != nil {
			if e != nil || len(out) != len(prefix) {
				t.Fatalf("%q: an error with an entry or appended bytes", line)
			}
			return
		}
		checkSameParse(t, line, e, want)
		if r.Lenient() != slow.Lenient() {
			t.Fatalf("%q: lenient %d, general parser %d", line, r.Lenient(), slow.Lenient())
		}
		if len(out) == len(prefix) {
			return // read by the general parser
		}
		added := out[len(prefix):]
		if !bytes.Equal(added, append(bytes.Clone(e.Digest), e.Data...)) {
			t.Fatalf("%q: appended %x, want the digest and the data", line, added)
		}
		if unsafe.SliceData(e.Digest) != unsafe.SliceData(added) || unsafe.SliceData(e.Data) != &added[len(e.Digest)] {
			t.Fatalf("%q: the entry does not alias the appended bytes", line)
		}
	})
}
