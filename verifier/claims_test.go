package verifier

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// FuzzClaims: parseClaims reads what encoding/json reads, as the same
// value; appendJSON writes json.Marshal's bytes.
func FuzzClaims(f *testing.F) {
	c := &challengeClaims{Node: "node-1", Round: 7, Nonce: []byte{1, 2, 3}, Offset: 51, EventLog: true, Expires: 1796316112456,
		Selection: quote.NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})}
	f.Add(c.appendJSON(nil), "n", uint64(1), []byte{}, -5)
	f.Add([]byte(`{"n":"a","s":[{"bank":"sha256","pcrs":[]}],"x":-1}`), "<&>", uint64(0), []byte(nil), 30)
	f.Fuzz(func(t *testing.T, data []byte, node string, round uint64, nonce []byte, pcrIndex int) {
		if got, ok := parseClaims(data); ok {
			want := new(challengeClaims)
			if err := json.Unmarshal(data, want); err != nil {
				t.Fatalf("parseClaims accepted what encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("read differently:\nparseClaims %#v\nencoding/json %#v", got, want)
			}
		}
		c := &challengeClaims{Node: node, Round: round, Nonce: nonce, Offset: round / 3, EventLog: round%2 == 0, Expires: -int64(round)}
		if pcrIndex%3 != 0 {
			c.Selection = quote.Selection{{Bank: pcr.Bank(round), PCRs: []int{pcrIndex, 10}}, {Bank: pcr.SHA256}}
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
		if back, ok := parseClaims(want); ok && !reflect.DeepEqual(back.Selection, c.Selection) && c.Selection != nil {
			t.Fatalf("selection read back as %v, want %v", back.Selection, c.Selection)
		}
	})
}

// TestTokenRoundTrip: a token opens to the claims it was made of, through
// the direct reader; a token of another build's JSON (escapes, key order)
// opens through encoding/json.
func TestTokenRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := &challengeClaims{Node: "n1", Round: 3, Nonce: []byte("nonce"), Selection: quote.NewSelection([]pcr.Bank{pcr.SHA256}, []int{0, 10}),
		Offset: 9, Expires: 1 << 50}
	tok, err := signToken(key, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := parseClaims(c.appendJSON(nil)); !ok {
		t.Fatal("claims not read directly")
	}
	got, err := openToken(key, tok, time.UnixMilli(0))
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("opened %+v, %v; want %+v", got, err, c)
	}
}
