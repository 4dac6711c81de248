package attest

import (
	"encoding/json"
	"testing"

	"github.com/imago-ima/imago/pcr"
)

// FuzzPCRValues: the fast path accepts exactly what pcr.ParseJSON
// accepts, with the same values.
func FuzzPCRValues(f *testing.F) {
	f.Add([]byte(`{"sha1":{"0":"` + zeros(40) + `","10":"` + zeros(40) + `"},"sha256":{"10":"` + zeros(64) + `"}}`))
	f.Add([]byte(` { "sha256" : { "23" : "` + zeros(64) + `" } } `))
	f.Add([]byte(`{"pcrs":{"sha256":{"1":"` + zeros(64) + `"}}}`))
	f.Add([]byte(`{"sha256":{"07":"` + zeros(64) + `"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := pcr.ParseJSON(b)
		var got PCRValues
		gerr := json.Unmarshal(b, &got)
		if !json.Valid(b) {
			return // encoding/json refuses it before UnmarshalJSON runs
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("pcr.ParseJSON: %v; PCRValues: %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		a, _ := json.Marshal(want)
		c, _ := json.Marshal(got)
		if string(a) != string(c) {
			t.Fatalf("values differ:\n%s\n%s", a, c)
		}
		if s, ok := parsePlainPCRs(b); ok {
			d, _ := json.Marshal(s)
			if string(d) != string(a) {
				t.Fatalf("fast path differs:\n%s\n%s", d, a)
			}
		}
	})
}
