package attest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// FuzzRoundJSON: the challenge and result readers read what encoding/json
// reads, as the same values; the appenders write json.Marshal's bytes.
func FuzzRoundJSON(f *testing.F) {
	sel := quote.NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	ch, _ := json.Marshal(Challenge{Token: "eyJ.c2ln", Nonce: []byte{1, 2}, Selection: sel, Offset: 51, Expires: "2026-12-03T17:00:00.123Z"})
	res, _ := json.Marshal(Result{Node: "n1", Verdict: VerdictFail, State: StateFail, Entries: 61, Round: 9,
		Failures: []Failure{{Entry: 60, Path: "/usr/bin/x", ID: "ima.validation.ima-ng.not_in_allowlist", Detail: "not in the policy"}}})
	f.Add(ch, "t", uint64(3), []byte{1}, "/a b")
	f.Add(res, "<é>", uint64(0), []byte(nil), "")
	f.Fuzz(func(t *testing.T, data []byte, s string, n uint64, nonce []byte, path string) {
		var c, cw Challenge
		if err := c.DecodeJSON(data); err == nil {
			if werr := json.Unmarshal(data, &cw); werr != nil || !reflect.DeepEqual(c, cw) {
				t.Fatalf("challenge read as %#v, encoding/json %#v (%v)", c, cw, werr)
			}
		} else if json.Unmarshal(data, &cw) == nil {
			t.Fatalf("challenge refused (%v), encoding/json reads it", err)
		}
		var r, rw Result
		if err := r.DecodeJSON(data); err == nil {
			if werr := json.Unmarshal(data, &rw); werr != nil || !reflect.DeepEqual(r, rw) {
				t.Fatalf("result read as %#v, encoding/json %#v (%v)", r, rw, werr)
			}
		} else if json.Unmarshal(data, &rw) == nil {
			t.Fatalf("result refused (%v), encoding/json reads it", err)
		}
		cv := Challenge{Token: s, Nonce: nonce, Offset: n, EventLog: n%2 == 0, Expires: path}
		if n%3 != 0 {
			cv.Selection = quote.Selection{{Bank: pcr.Bank(n), PCRs: []int{int(n % 24)}}, {Bank: pcr.SHA256}}
		}
		rv := Result{Node: s, Verdict: path, State: s, Entries: n, Round: n / 2, EAR: path}
		if n%5 != 0 {
			rv.Failures = []Failure{{Entry: -int64(n), Path: path, ID: s, Detail: path}, {}}
		}
		for _, c := range []struct {
			got  []byte
			want any
		}{{cv.AppendJSON(nil), cv}, {rv.AppendJSON(nil), rv}} {
			want, err := json.Marshal(c.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.got, want) {
				t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", c.got, want)
			}
		}
	})
}
