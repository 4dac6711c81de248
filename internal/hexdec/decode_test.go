package hexdec

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// check compares Decode and Append with encoding/hex on src.
func check(t *testing.T, src []byte) {
	t.Helper()
	checkLower(t, src)
	want, err := hex.DecodeString(string(src))
	dst := make([]byte, len(src)/2)
	ok, upper := Decode(dst, src)
	if ok != (err == nil) {
		t.Fatalf("Decode(%q): ok %v, encoding/hex: %v", src, ok, err)
	}
	if !ok {
		if out, ok2, _ := Append([]byte("x"), src); ok2 || string(out) != "x" {
			t.Fatalf("Append(%q) failed but returned %q, %v", src, out, ok2)
		}
		return
	}
	if !bytes.Equal(dst, want) {
		t.Fatalf("Decode(%q) = %x, want %x", src, dst, want)
	}
	if wantUp := bytes.ContainsAny(src, "ABCDEF"); upper != wantUp {
		t.Fatalf("Decode(%q): upper %v, want %v", src, upper, wantUp)
	}
	if out, ok2, up2 := Append([]byte("x"), src); !ok2 || up2 != upper || string(out) != "x"+string(want) {
		t.Fatalf("Append(%q) = %q, %v, %v", src, out, ok2, up2)
	}
}

// checkLower compares AppendLower with Decode on src: it decodes exactly
// the lower-case hex texts of a multiple of eight digits, and leaves the
// length of dst as it was otherwise.
func checkLower(t *testing.T, src []byte) {
	t.Helper()
	want := make([]byte, len(src)/2)
	ok, upper := Decode(want, src)
	ok = ok && !upper && len(src)%8 == 0
	out, got := AppendLower([]byte("x"), src)
	if got != ok || ok && string(out) != "x"+string(want) || !ok && string(out) != "x" {
		t.Fatalf("AppendLower(%q) = %q, %v; want %v (Decode %x)", src, out, got, ok, want)
	}
}

// checkLower32 compares Lower32 with Decode on src (64 bytes).
func checkLower32(t *testing.T, src []byte) {
	t.Helper()
	want := make([]byte, 32)
	ok, upper := Decode(want, src)
	var got [32]byte
	if ok32 := Lower32(&got, (*[64]byte)(src)); ok32 != (ok && !upper) || ok32 && !bytes.Equal(got[:], want) {
		t.Fatalf("Lower32(%q) = %x, %v; Decode: %x, %v, upper %v", src, got, ok32, want, ok, upper)
	}
}

// TestDecode: every byte value at every position of the words and of the
// tail (bytes are judged one by one, so this covers every input of these
// lengths with one odd byte), and digests as lists and policies hold them.
func TestDecode(t *testing.T) {
	for n := 0; n <= 40; n += 2 {
		for pos := range n {
			for c := range 256 {
				for _, fill := range []string{"0", "a", "F"} {
					b := []byte(strings.Repeat(fill, n))
					b[pos] = byte(c)
					check(t, b)
				}
			}
		}
	}
	for _, s := range []string{"", "0", "abc", "ff", "FF", "fF0", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "da39a3ee5e6b4b0d3255bfef95601890afd80709"} {
		check(t, []byte(s))
	}
	for pos := range 64 {
		for c := range 256 {
			for _, fill := range []string{"0", "f", "A"} {
				b := []byte(strings.Repeat(fill, 64))
				b[pos] = byte(c)
				checkLower32(t, b)
			}
		}
	}
	if ok, _ := Decode(make([]byte, 1), []byte("abcd")); ok {
		t.Fatal("Decode into a short dst succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
	f.Add([]byte("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"))
	f.Add([]byte("0123456789abcdeg"))
	f.Fuzz(func(t *testing.T, src []byte) {
		check(t, src)
		if len(src) == 64 {
			checkLower32(t, src)
		}
	})
}

// BenchmarkDecode: a sha256 digest, as a policy and an ima-ng line hold
// it, against encoding/hex.
func BenchmarkDecode(b *testing.B) {
	src := []byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	dst := make([]byte, 32)
	b.Run("hexdec", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if ok, _ := Decode(dst, src); !ok {
				b.Fatal("bad")
			}
		}
	})
	b.Run("lower32", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		var d [32]byte
		for b.Loop() {
			if !Lower32(&d, (*[64]byte)(src)) {
				b.Fatal("bad")
			}
		}
	})
	b.Run("encoding-hex", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if _, err := hex.Decode(dst, src); err != nil {
				b.Fatal(err)
			}
		}
	})
}
