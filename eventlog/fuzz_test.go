package eventlog

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader: no panic on any input; an error comes with a nil event and is
// sticky; a log that reads without error re-encodes to the same bytes
// (records, the Spec ID vendorInfo taken from after record 0, then filler);
// Replay never panics.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		var evs []*Event
		var err error
		for {
			var e *Event
			e, err = r.Next()
			if err != nil {
				if e != nil {
					t.Fatal("event with error")
				}
				break
			}
			evs = append(evs, e)
		}
		if err != io.EOF {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FormatError: %v", err)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("error not sticky")
			}
			return
		}
		var out []byte
		for i, e := range evs {
			fm := r.Format()
			if i == 0 {
				fm = FormatSHA1
			}
			out = e.Append(out, fm)
			if i == 0 && r.SpecID() != nil && r.SpecID().VendorInfoOutside > 0 {
				vi := r.SpecID().VendorInfo
				out = append(out, vi[len(vi)-r.SpecID().VendorInfoOutside:]...)
			}
		}
		n, c := r.Filler()
		out = append(out, bytes.Repeat([]byte{c}, int(n))...)
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs: %d bytes, input %d", len(out), len(data))
		}
		if r.Offset() != int64(len(data)) {
			t.Fatalf("offset %d, input %d", r.Offset(), len(data))
		}
		s, _, err := Replay(evs)
		if err != nil && s != nil {
			t.Fatal("set with error")
		}
	})
}
