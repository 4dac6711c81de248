package appraise

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/verify"
)

// roundState is a node's State as the verifier stores it after a round.
func roundState() *State {
	return &State{Clock: &quote.ClockInfo{Clock: 38, Safe: true}, Verify: verify.State{Next: 411, ListBank: "sha1", BootAggregate: "pass",
		PCRs: []verify.PCRValue{{Bank: "sha1", PCR: 10, Value: "1d00b702ea2f4370ceedf39298b067d116fb6bbb"},
			{Bank: "sha256", PCR: 10, Value: "ab96ef3a029069ca4dffa05cfe1382acca788146c223df03296bd03d8e1ab6da"}}}}
}

// FuzzStateJSON: ParseState's direct reader reads what encoding/json
// reads, as the same State; AppendJSON writes json.Marshal's bytes.
func FuzzStateJSON(f *testing.F) {
	rs, _ := json.Marshal(roundState())
	f.Add(rs, "sha1", 3, []byte{1})
	f.Add([]byte(`{"verify":{"next":0,"keys":[{"keyring":".ima","entry":2,"keyid":7,"data":"AAE="}],"late":true,"lag":1,"failed":2,"first_failed":3},"boot_log":true}`), "<x>", -1, []byte(nil))
	f.Fuzz(func(t *testing.T, data []byte, s string, n int, key []byte) {
		var got State
		if readState(data, &got) {
			var want State
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatalf("read what encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("read differently:\ndirect        %#v\nencoding/json %#v", got, want)
			}
		}
		st := State{Verify: verify.State{Next: n, ListBank: s, BootAggregate: s, Late: n%2 == 0, Lag: n / 2, Failed: n / 3, FirstFailed: n / 5}, BootLog: n%3 == 0}
		if n%4 != 0 {
			st.Clock = &quote.ClockInfo{Clock: uint64(n), ResetCount: uint32(n), RestartCount: uint32(n >> 8), Safe: n%5 == 0}
		}
		if n%7 != 0 {
			st.Verify.PCRs = []verify.PCRValue{{Bank: s, PCR: n, Value: s, Variant: s}, {Bank: "sha256", PCR: 10}}
		}
		if n%11 != 0 {
			st.Verify.Keys = []verify.LearnedKey{{Keyring: s, Entry: n, KeyID: uint32(n), Data: key}}
		}
		want, err := json.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}

// TestParseState: a stored State reads back directly; an empty one is the
// zero State; another form goes through encoding/json.
func TestParseState(t *testing.T) {
	st := roundState()
	b := st.AppendJSON(nil)
	var direct State
	if !readState(b, &direct) {
		t.Fatalf("not read directly: %s", b)
	}
	if got, err := ParseState(b); err != nil || !reflect.DeepEqual(&got, st) {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := ParseState(nil); err != nil || !reflect.DeepEqual(got, State{}) {
		t.Fatalf("empty: %+v %v", got, err)
	}
	if got, err := ParseState([]byte(`{"verify":{"Next":3}}`)); err != nil || got.Verify.Next != 3 {
		t.Fatalf("through encoding/json: %+v %v", got, err)
	}
	if _, err := ParseState([]byte(`{"verify":`)); err == nil {
		t.Fatal("truncated state read")
	}
}

func BenchmarkStateJSON(b *testing.B) {
	st := roundState()
	data := st.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		s, err := ParseState(data)
		if err != nil {
			b.Fatal(err)
		}
		data = s.AppendJSON(data[:0])
	}
}
