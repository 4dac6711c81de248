package verifier

import (
	"testing"
	"time"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

func TestToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	c := &challengeClaims{Node: "n", Round: 4, Nonce: []byte{1, 2}, Selection: quote.NewSelection([]pcr.Bank{pcr.SHA256}, []int{10}), Offset: 7, Expires: now.Add(time.Minute).UnixMilli()}
	tok, err := signToken(key, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openToken(key, tok, now)
	if err != nil || got.Round != 4 || got.Offset != 7 || got.Node != "n" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := openToken(key, tok, now.Add(2*time.Minute)); err != errTokenExpired {
		t.Fatalf("expired: %v", err)
	}
	if _, err := openToken([]byte("another key of thirty-two bytes!"), tok, now); err != errTokenInvalid {
		t.Fatalf("other key: %v", err)
	}
	b := []byte(tok)
	b[3] ^= 1
	if _, err := openToken(key, string(b), now); err != errTokenInvalid {
		t.Fatalf("changed token: %v", err)
	}
}

// FuzzOpenToken: tokens come back from attesters.
func FuzzOpenToken(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tok, _ := signToken(key, &challengeClaims{Node: "n", Expires: 1 << 50})
	f.Add(tok)
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := openToken(key, tok, time.Unix(0, 0))
		if (err == nil) == (c == nil) {
			t.Fatal("value and error disagree")
		}
	})
}
