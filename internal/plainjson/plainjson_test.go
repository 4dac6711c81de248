package plainjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppend: the appenders write json.Marshal's bytes.
func FuzzAppend(f *testing.F) {
	f.Add("node-1", []byte{1, 2, 3})
	f.Add("<\"é\x00\u2028", []byte(nil))
	f.Fuzz(func(t *testing.T, s string, b []byte) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got, want)
		}
		want, _ = json.Marshal(b)
		if got := AppendBytes(nil, b); !bytes.Equal(got, want) {
			t.Fatalf("AppendBytes(%x) = %s, json.Marshal %s", b, got, want)
		}
	})
}

// FuzzReader: what the Reader reads as a value, encoding/json reads as the
// same value.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`"a b"`))
	f.Add([]byte(` -12 `))
	f.Add([]byte(`true`))
	f.Add([]byte(`"AAE="`))
	f.Fuzz(func(t *testing.T, data []byte) {
		same := func(got any, ptr any) {
			t.Helper()
			if err := json.Unmarshal(data, ptr); err != nil {
				t.Fatalf("%q read as %v, encoding/json: %v", data, got, err)
			}
		}
		if r := NewReader(data); true {
			if s, ok := r.ASCII(); ok && r.End() {
				var v string
				if same(s, &v); v != s {
					t.Fatalf("%q: %q, encoding/json %q", data, s, v)
				}
			}
		}
		if r := NewReader(data); true {
			if b, ok := r.Base64(); ok && r.End() {
				var v []byte
				if same(b, &v); !bytes.Equal(v, b) || (v == nil) != (b == nil) {
					t.Fatalf("%q: %x, encoding/json %x", data, b, v)
				}
			}
		}
		if r := NewReader(data); true {
			if n, ok := r.Int(64); ok && r.End() {
				var v int64
				if same(n, &v); v != n {
					t.Fatalf("%q: %d, encoding/json %d", data, n, v)
				}
			}
		}
		if r := NewReader(data); true {
			if b, ok := r.Bool(); ok && r.End() {
				var v bool
				if same(b, &v); v != b {
					t.Fatalf("%q: %v, encoding/json %v", data, b, v)
				}
			}
		}
	})
}
