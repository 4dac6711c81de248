package ima

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// exercise calls every accessor of e; none may panic, and the JSON form must
// be valid JSON.
func exercise(t *testing.T, e *Entry) {
	e.FileDigest()
	e.Name()
	e.Signature()
	e.Xattrs()
	e.IsBootAggregate()
	for _, id := range []string{FieldIUID, FieldIGID, FieldIMode} {
		e.Uint(id)
	}
	for _, f := range e.Fields {
		switch f.ID {
		case FieldD, FieldDNG, FieldDNGv2, FieldDModsig:
			ParseDigestField(f.ID, f.Data)
		case FieldSig, FieldEVMSig:
			ParseSigHeader(f.Data)
		}
	}
	j, err := e.MarshalJSON()
	if err != nil || !json.Valid(j) {
		t.Fatalf("invalid JSON %v: %s", err, j)
	}
}

// FuzzBinaryReader: no panic; a nil entry with every error; every entry
// that parses re-encodes to the bytes it was read from.
func FuzzBinaryReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), ReaderOptions{})
		var out []byte
		var err error
		var e *Entry
		for {
			e, err = r.Next()
			if err != nil {
				if e != nil {
					t.Fatal("entry with error")
				}
				break
			}
			exercise(t, e)
			out, err = AppendBinary(out, e, r.ByteOrder())
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if int64(len(out)) != r.Offset() {
				t.Fatalf("re-encoded %d bytes, reader at %d", len(out), r.Offset())
			}
			// The ASCII form of a binary entry must not panic the ASCII
			// reader, and if it parses canonically it is stable.
			line := AppendASCII(nil, e)
			ar := NewASCIIReader(bytes.NewReader(line), ReaderOptions{Order: r.ByteOrder()})
			// (A name with '\n' spills onto a second line: the kernel's
			// ASCII list is ambiguous there, so only one-line forms count.)
			if ae, err := ar.Next(); err == nil && ar.Lenient() == 0 && bytes.Count(line, []byte("\n")) == 1 {
				if !bytes.Equal(AppendASCII(nil, ae), line) {
					t.Fatalf("ascii not stable:\n%q\n%q", line, AppendASCII(nil, ae))
				}
			}
		}
		if !bytes.Equal(out, data[:len(out)]) {
			t.Fatal("re-encoding differs from the input")
		}
		if err == io.EOF {
			want := len(data)
			if r.TrailingNewline() {
				want--
			}
			if len(out) != want {
				t.Fatalf("clean end after %d of %d bytes", len(out), len(data))
			}
		} else {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FormatError", err)
			}
		}
		if e2, err2 := r.Next(); e2 != nil || err2 != err {
			t.Fatal("error not sticky")
		}
	})
}

// FuzzASCIIReader: no panic; a nil entry with every error; a line accepted
// without leniency re-encodes to itself; every entry survives binary ->
// binary reading unchanged.
func FuzzASCIIReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewASCIIReader(bytes.NewReader(data), ReaderOptions{})
		lines := bytes.SplitAfter(data, []byte("\n"))
		for {
			lenient := r.Lenient()
			e, err := r.Next()
			if err != nil {
				if e != nil {
					t.Fatal("entry with error")
				}
				if err != io.EOF {
					var fe *FormatError
					if !errors.As(err, &fe) || fe.Offset != r.Offset() {
						t.Fatalf("error %v does not name line %d", err, r.Offset())
					}
				}
				break
			}
			exercise(t, e)
			line := lines[r.Offset()-1]
			got := AppendASCII(nil, e)
			if r.MissingFinalNewline() {
				got = got[:len(got)-1]
			}
			if r.Lenient() == lenient && !bytes.Equal(got, line) {
				t.Fatalf("line %d re-encodes differently:\n%q\n%q", r.Offset(), line, got)
			}
			rec, err := AppendBinary(nil, e, binary.LittleEndian)
			if err != nil {
				t.Fatalf("binary: %v", err)
			}
			br := NewReader(bytes.NewReader(rec), ReaderOptions{Order: binary.LittleEndian, DigestSize: len(e.Digest)})
			be, err := br.Next()
			if err != nil || !sameEntry(be, e) {
				t.Fatalf("binary round trip: %v", err)
			}
		}
	})
}

// FuzzTemplateFormat: LookupTemplate never panics and accepted formats
// respect the kernel's limits.
func FuzzTemplateFormat(f *testing.F) {
	for _, s := range []string{"ima-ng", "d-ng|n-ng|iuid", "d|n", "", "|", "d-ng|xx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := LookupTemplate(s)
		if err != nil {
			if tm != nil {
				t.Fatal("template with error")
			}
			return
		}
		if len(tm.Fields) == 0 || len(tm.Fields) > MaxTemplateFields || tm.Name != s {
			t.Fatalf("accepted %q: %+v", s, tm)
		}
	})
}
