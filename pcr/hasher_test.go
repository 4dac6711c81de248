package pcr

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"testing"

	"github.com/imago-ima/imago/internal/cputime"
)

// The Hasher against the standard library's one-shot functions, for every
// message length up to five blocks and for extends, in every bank.
func TestHasher(t *testing.T) {
	msg := make([]byte, 5*64+3)
	for i := range msg {
		msg[i] = byte(i*31 + 7)
	}
	std := map[Bank]func([]byte) []byte{
		SHA1:   func(b []byte) []byte { s := sha1.Sum(b); return s[:] },
		SHA256: func(b []byte) []byte { s := sha256.Sum256(b); return s[:] },
		SHA384: func(b []byte) []byte { s := sha512.Sum384(b); return s[:] },
		SHA512: func(b []byte) []byte { s := sha512.Sum512(b); return s[:] },
	}
	for b, want := range std {
		h := b.NewHasher()
		if fast := b == SHA1 || b == SHA256; h.fastPath() != fast {
			t.Errorf("%s: fast path %v, want %v", b, h.fastPath(), fast)
		}
		var got [MaxDigestSize]byte
		for n := range len(msg) {
			if !h.Sum(&got, msg[:n]) || string(got[:b.Size()]) != string(want(msg[:n])) {
				t.Fatalf("%s: Sum of %d bytes: %x, want %x", b, n, got[:b.Size()], want(msg[:n]))
			}
			p := AppendPadding(append([]byte(nil), msg[:n]...), n)
			if len(p)%64 != 0 || len(p)-n < 9 || len(p)-n > 72 {
				t.Fatalf("padding of %d bytes: %d", n, len(p)-n)
			}
			h.SumPadded(&got, p, n)
			if string(got[:b.Size()]) != string(want(msg[:n])) {
				t.Fatalf("%s: SumPadded of %d bytes", b, n)
			}
		}
		var v [MaxDigestSize]byte
		ref := Zero(b)
		for i := range 10 {
			d := want(msg[i : i+7])
			h.Extend(&v, d)
			ref = Extend(b, ref, d)
			if string(v[:b.Size()]) != string(ref) {
				t.Fatalf("%s: extend %d: %x, want %x", b, i, v[:b.Size()], ref)
			}
		}
	}
	if Bank(0x1234).NewHasher().Sum(new([MaxDigestSize]byte), nil) {
		t.Error("an unknown bank hashed")
	}
}

func BenchmarkHasher(b *testing.B) {
	msg := make([]byte, 100) // an ima-ng entry's template data
	for _, bank := range []Bank{SHA1, SHA256} {
		b.Run(bank.String()+"/Sum", func(b *testing.B) {
			var d [MaxDigestSize]byte
			b.ReportAllocs()
			m := cputime.Start()
			defer func() { m.Report(b, float64(b.N), "op") }()
			for b.Loop() {
				bank.Sum(&d, msg)
			}
		})
		b.Run(bank.String()+"/Hasher", func(b *testing.B) {
			h := bank.NewHasher()
			p := AppendPadding(append([]byte(nil), msg...), len(msg))
			var d [MaxDigestSize]byte
			b.ReportAllocs()
			m := cputime.Start()
			defer func() { m.Report(b, float64(b.N), "op") }()
			for b.Loop() {
				h.SumPadded(&d, p, len(msg))
			}
		})
		b.Run(bank.String()+"/Extend", func(b *testing.B) {
			h := bank.NewHasher()
			var v [MaxDigestSize]byte
			d := make([]byte, bank.Size())
			b.ReportAllocs()
			m := cputime.Start()
			defer func() { m.Report(b, float64(b.N), "op") }()
			for b.Loop() {
				h.Extend(&v, d)
			}
		})
	}
}
