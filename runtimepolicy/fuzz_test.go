package runtimepolicy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"os"
	"path/filepath"
	"testing"
)

func seedFiles(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, _ := filepath.Glob(p)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
}

// FuzzCompile: any input gives a policy or an error, never a panic; the
// fast path of the digest maps reads what the token reader reads, and
// fails as it fails; a policy that compiles also parses, writes back, and
// reads back the same.
func FuzzCompile(f *testing.F) {
	seedFiles(f, "testdata/keylime/*.json", "testdata/keylime-tests/*/*/*.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Compile(bytes.NewReader(data), Options{})
		if err != nil {
			if c != nil {
				t.Fatal("a compiled policy with an error")
			}
			if _, slowErr := Compile(bytes.NewReader(data), Options{slow: true}); slowErr == nil || slowErr.Error() != err.Error() {
				t.Fatalf("the fast path fails otherwise than the token reader: %v\n%v", err, slowErr)
			}
			return
		}
		if slow, err := Compile(bytes.NewReader(data), Options{slow: true}); err != nil || tablesDump(slow) != tablesDump(c) {
			t.Fatalf("the fast path compiles otherwise than the token reader: %v", err)
		}
		p, err := Parse(bytes.NewReader(data), Options{})
		if err != nil {
			t.Fatalf("compiles but does not parse: %v", err)
		}
		slow, err := Parse(bytes.NewReader(data), Options{slow: true})
		if err != nil || !bytes.Equal(slow.Marshal(), p.Marshal()) {
			t.Fatalf("the fast path reads otherwise than the token reader: %v", err)
		}
		out := p.Marshal()
		p2, err := Parse(bytes.NewReader(out), Options{})
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
		}
		if !bytes.Equal(p2.Marshal(), out) {
			t.Fatalf("Marshal is not stable:\n%s\n%s", out, p2.Marshal())
		}
		n, _, _ := c.Counts()
		if n != p.Digests.Len() {
			t.Fatalf("compiled %d paths, parsed %d", n, p.Digests.Len())
		}
		if pc, err := p.Compile(); err != nil || tablesDump(pc) != tablesDump(c) {
			t.Fatalf("the policy parsed compiles otherwise than the stream: %v", err)
		}
	})
}

// FuzzEnvelope: DSSE envelopes with a key either verify or fail with an
// error; a mutated signed policy never verifies with a different payload.
func FuzzEnvelope(f *testing.F) {
	seedFiles(f, "testdata/keylime/runtime-policy-test-signed*.json")
	pub, err := ParseKey(mustRead(f, "testdata/keylime/runtime-policy-pubkey.pub"))
	if err != nil {
		f.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), zeroReader{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, key := range []any{pub, &other.PublicKey} {
			c, err := Compile(bytes.NewReader(data), Options{Key: key})
			if err != nil {
				if c != nil {
					t.Fatal("a compiled policy with an error")
				}
				continue
			}
			if c.Signature == nil {
				t.Fatal("a policy compiled with a key but no signature")
			}
		}
		// An envelope never compiles without a key.
		if _, err := Compile(bytes.NewReader(data), Options{}); err == nil {
			if c, err := Compile(bytes.NewReader(data), Options{Key: pub}); err == nil && c.Signature != nil {
				t.Fatal("a document compiles both as a plain policy and as an envelope")
			}
		}
	})
}

// FuzzAllowlist: allowlists and exclude lists never panic; what reads is
// valid.
func FuzzAllowlist(f *testing.F) {
	seedFiles(f, "testdata/keylime/create-runtime-policy_allowlist-*", "testdata/keylime-tests/*/*/allowlist*", "testdata/keylime-tests/*/*/exclude*")
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ReadAllowlist(bytes.NewReader(data))
		if err == nil {
			p := FromAllowlist(a, nil, "")
			if err := p.Check(); err != nil {
				t.Fatalf("an allowlist that reads makes an invalid policy: %v", err)
			}
		} else if a != nil {
			t.Fatal("an allowlist with an error")
		}
		ex, err := ReadExcludeList(bytes.NewReader(data))
		if err == nil {
			if _, err := CompileExcludes(ex); err != nil {
				t.Fatalf("an exclude list that reads does not compile: %v", err)
			}
		}
	})
}

func mustRead(f *testing.F, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
