package sm3

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Vectors from GB/T 32905-2016 Appendix A (also in ISO/IEC 10118-3 and RFC draft-sca-cfrg-sm3).
func TestVectors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"},
		{strings.Repeat("abcd", 16), "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"},
	} {
		got := Sum([]byte(tc.in))
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("Sum(%q) = %x, want %s", tc.in, got, tc.want)
		}
		h := New()
		for i := 0; i < len(tc.in); i++ { // byte at a time exercises buffering
			h.Write([]byte{tc.in[i]})
		}
		if s := hex.EncodeToString(h.Sum(nil)); s != tc.want {
			t.Errorf("streamed %q = %s, want %s", tc.in, s, tc.want)
		}
	}
}

// The package comment says allocation-free: Sum, and Write/Sum into a
// buffer with room, allocate nothing.
func TestAllocs(t *testing.T) {
	data := []byte(strings.Repeat("abcd", 100))
	// One run of 100 calls each: AllocsPerRun divides by the runs.
	if n := testing.AllocsPerRun(1, func() {
		for range 100 {
			_ = Sum(data)
		}
	}); n != 0 {
		t.Errorf("Sum: %v allocations in 100 calls", n)
	}
	h := New()
	buf := make([]byte, 0, Size)
	if n := testing.AllocsPerRun(1, func() {
		for range 100 {
			h.Reset()
			h.Write(data)
			buf = h.Sum(buf[:0])
		}
	}); n != 0 {
		t.Errorf("Write+Sum: %v allocations in 100 calls", n)
	}
}
