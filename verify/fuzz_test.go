package verify

import (
	"bytes"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// FuzzState: a stored State is decoded or refused, never a panic; one that
// decodes can start a round.
func FuzzState(f *testing.F) {
	f.Add([]byte(`{"next": 3, "list_bank": "sha1", "pcrs": [{"bank": "sha1", "pcr": 10, "value": "` + string(bytes.Repeat([]byte("ab"), 20)) + `"}]}`))
	f.Add([]byte(`{"next": 0, "keys": [{"keyring": ".ima", "entry": 1, "keyid": 1, "data": "AAAA"}]}`))
	p, err := NewPolicy(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState(data)
		if err != nil {
			if s != nil {
				t.Fatal("a state with an error")
			}
			return
		}
		_, _, _ = p.Verify(s, Round{Entries: Entries(nil), Quoted: pcr.Set{pcr.SHA1: {10: make([]byte, 20)}}})
	})
}

// FuzzVerify: any list bytes, read as the CLI reads them, give a report or
// an error under a policy with keys, never a panic.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"measurements.txt", "signatures.txt", "bad-signatures.txt", "keyrings.txt"} {
		f.Add(readFile(f, kl+name))
	}
	p, err := NewPolicy(Options{RuntimePolicy: loadPolicy(f, "runtime-policy-test.json"), Keys: loadKeys(f, "rsa2048pub.pem", "secp256k1.pem")})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, st, err := p.Verify(nil, Round{Entries: ima.ScanList(bytes.NewReader(data), ima.ReaderOptions{})})
		// The same bytes as a raw list: ascii lines parsed by the workers.
		rep2, _, err2 := p.Verify(nil, Round{List: bytes.NewReader(data)})
		if (err == nil) != (err2 == nil) {
			t.Fatalf("entries: %v; raw list: %v", err, err2)
		}
		if err != nil {
			if rep != nil || st != nil {
				t.Fatal("a report with an error")
			}
			return
		}
		if st.Next != rep.Read || rep.Consumed != rep.Read {
			t.Fatalf("offline round consumed %d of %d, state at %d", rep.Consumed, rep.Read, st.Next)
		}
		if rep.Read != rep2.Read || rep.FailureCount != rep2.FailureCount || len(rep.Failures) != len(rep2.Failures) {
			t.Fatalf("entries and raw list differ: %+v\n%+v", rep, rep2)
		}
		for i := range rep.Failures {
			if rep.Failures[i].Entry != rep2.Failures[i].Entry || rep.Failures[i].ID != rep2.Failures[i].ID {
				t.Fatalf("failure %d: %v vs %v", i, rep.Failures[i], rep2.Failures[i])
			}
		}
	})
}

// FuzzCommonDigest: the fast read of a d-ng field agrees with
// ima.ParseDigestField wherever it answers.
func FuzzCommonDigest(f *testing.F) {
	f.Add(append([]byte("sha256:\x00"), bytes.Repeat([]byte{7}, 32)...))
	f.Add(append([]byte("sha1:\x00"), bytes.Repeat([]byte{7}, 20)...))
	f.Add(append([]byte("sha1:\x00"), bytes.Repeat([]byte{7}, 32)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, id := range []string{ima.FieldDNG, ima.FieldDNGv2, ima.FieldD} {
			got, ok := commonDigest(ima.Field{ID: id, Data: data})
			if !ok {
				continue
			}
			want, err := ima.ParseDigestField(id, data)
			if err != nil || want.Alg != got.Alg || !bytes.Equal(want.Sum, got.Sum) || want.Type != got.Type || want.String() != got.String() {
				t.Fatalf("%s %x: fast %v, ParseDigestField %v, %v", id, data, got, want, err)
			}
		}
	})
}

// FuzzSequentialLine: the reader's quick look for a buffer template right
// after the template digest agrees with a walk over the fields wherever
// the walk finds a template digest of the list's length (a line with no
// such digest is refused by whichever parser reads it).
func FuzzSequentialLine(f *testing.F) {
	f.Add([]byte("10 757f13d368d4bd3656b0fa0bae0e039f7bb06461 ima-ng sha256:7c9f /usr/lib/libbuf.so"), 40)
	f.Add([]byte(" 9 757f13d368d4bd3656b0fa0bae0e039f7bb06461 ima-buf sha256:7c9f .ima 00ff"), 40)
	f.Add([]byte("10 757f13d368d4bd3656b0fa0bae0e039f7bb06461a775c3a2e28d92b1bbb83b9b ima-bufv2 x"), 64)
	f.Add([]byte("1 ab ima-sig"), 2)
	f.Fuzz(func(t *testing.T, line []byte, hexLen int) {
		if hexLen < 0 || hexLen > 2*maxDigest {
			return
		}
		rest := line
		if len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			return
		}
		j := bytes.IndexByte(rest[i+1:], ' ')
		if j != hexLen {
			return
		}
		name := rest[i+1+j+1:]
		if k := bytes.IndexByte(name, ' '); k >= 0 {
			name = name[:k]
		}
		if want := bytes.Contains(name, []byte("buf")); sequentialLine(line, hexLen) != want {
			t.Fatalf("%q (digest of %d): quick look says %v, the fields %v", line, hexLen, !want, want)
		}
	})
}
