package hexdec

import "encoding/binary"

// val maps a byte to its hex digit value, 0xff for a byte that is not a
// hex digit; 0x10 marks an upper-case digit.
var val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
	}
	for c := 'A'; c <= 'F'; c++ {
		t[c] = byte(c-'A') + 10 | 0x10
	}
	return t
}()

// Decode decodes the hex text src into dst[:len(src)/2] and reports
// whether src is hex text (an even number of hex digits, either case) and
// whether it holds an upper-case digit. dst must hold len(src)/2 bytes;
// what it holds after a failure is unspecified.
//
// Eight digits are decoded a word at a time, without a table: each byte's
// value v is its low nibble, plus 9 for a letter (bit 0x40); v is encoded
// back as lower-case hex and compared with the byte (a letter made
// lower-case): they differ, or v is above 15, for every byte that is not a
// hex digit. Where one table read per digit waits on the read of the
// digit, this has no dependent loads: a third less time per ima-ng line.
func Decode(dst, src []byte) (ok, upper bool) {
	if len(src)%2 != 0 || len(dst) < len(src)/2 {
		return false, false
	}
	var bad, up uint64
	dst = dst[:len(src)/2]
	words := len(src) / 8
	for i := range words {
		x := binary.LittleEndian.Uint64(src[i*8:]) // the first digit in the low byte
		v, enc := word(x)
		lc := x | x>>6&ones<<5 // letters made lower-case
		bad |= lc ^ enc | v&(ones*0x10)
		up |= x ^ lc
		binary.LittleEndian.PutUint32(dst[i*4:], pack(v))
	}
	src, dst = src[words*8:], dst[words*4:]
	var acc byte
	for j := range dst {
		a, b := val[src[2*j]], val[src[2*j+1]]
		acc |= a | b
		dst[j] = (a&0x0f)<<4 | b&0x0f
	}
	return bad == 0 && acc&0xe0 == 0, up != 0 || acc&0x10 != 0
}

const ones, lows = 0x0101010101010101, 0x0f0f0f0f0f0f0f0f

// word returns the values v of the eight hex digits of x (a byte's low
// nibble, plus 9 for a letter), and enc, v encoded back as lower-case hex.
func word(x uint64) (v, enc uint64) {
	v = x&lows + x>>6&ones*9
	enc = v + ones*'0' + (v+ones*0x76)>>7&ones*('a'-'0'-10)
	return v, enc
}

// pack packs the eight digit values of v into four bytes, the first digit
// of a pair (the lower byte) the high nibble: a byte per 16-bit lane, then
// the lanes' bytes together.
func pack(v uint64) uint32 {
	w := (v&0x000f000f000f000f)<<4 | (v&0x0f000f000f000f00)>>8
	w = (w | w>>8) & 0x0000ffff0000ffff
	return uint32(w | w>>16)
}

// Lower32 decodes the 64 hex digits of src into dst, as Decode does, and
// reports whether they are all hex digits and none is upper case: the
// usual SHA-256 digest of a Keylime policy, in half of Decode's time (the
// sizes are fixed, so there are no bounds checks, and a 16-digit step
// writes eight bytes at once).
func Lower32(dst *[32]byte, src *[64]byte) bool {
	return lower16s(dst[:], src[:]) == 0
}

// lower20 is Lower32 for the 40 digits of a SHA-1 digest.
func lower20(dst *[20]byte, src *[40]byte) bool {
	bad := lower16s(dst[:16], src[:32])
	x := binary.LittleEndian.Uint64(src[32:])
	v, e := word(x)
	bad |= x ^ e | v&(ones*0x10)
	binary.LittleEndian.PutUint32(dst[16:], pack(v))
	return bad == 0
}

// lower16s decodes src, lower-case digits 16 at a time, into dst (half
// its length), each step writing eight bytes at once; it returns bits set
// where a byte is not a lower-case hex digit.
func lower16s(dst, src []byte) (bad uint64) {
	for len(src) >= 16 && len(dst) >= 8 {
		x := binary.LittleEndian.Uint64(src)
		y := binary.LittleEndian.Uint64(src[8:])
		vx, ex := word(x)
		vy, ey := word(y)
		bad |= (x ^ ex) | (y ^ ey) | (vx|vy)&(ones*0x10)
		binary.LittleEndian.PutUint64(dst, uint64(pack(vx))|uint64(pack(vy))<<32)
		src, dst = src[16:], dst[8:]
	}
	return bad
}

// AppendLower appends the bytes of src to dst when src is lower-case hex
// text of a multiple of eight digits (the SHA-1 and SHA-256 digests of a
// list's lines: 40 and 64), and reports whether it was; otherwise dst is
// returned as it was (bytes past its length may have changed) and the
// caller decodes src with Append, which also takes upper case. Without
// Decode's upper-case bookkeeping and tail loop, a 40-digit or 64-digit
// digest takes about half Decode's time.
func AppendLower(dst, src []byte) ([]byte, bool) {
	if len(src)%8 != 0 {
		return dst, false
	}
	n := len(dst)
	out := append(dst, make([]byte, len(src)/2)...)
	switch len(src) { // the sizes of fixed arrays: no bounds checks
	case 64:
		if !Lower32((*[32]byte)(out[n:]), (*[64]byte)(src)) {
			return dst, false
		}
		return out, true
	case 40:
		if !lower20((*[20]byte)(out[n:]), (*[40]byte)(src)) {
			return dst, false
		}
		return out, true
	}
	d := out[n:]
	var bad uint64
	for len(src) >= 8 && len(d) >= 4 {
		x := binary.LittleEndian.Uint64(src)
		v, enc := word(x)
		bad |= x ^ enc | v&(ones*0x10)
		binary.LittleEndian.PutUint32(d, pack(v))
		src, d = src[8:], d[4:]
	}
	if bad != 0 {
		return dst, false
	}
	return out, true
}

// Append appends the bytes of the hex text src to dst, as Decode decodes
// them; on failure dst is returned as it was.
func Append(dst, src []byte) (out []byte, ok, upper bool) {
	n := len(dst)
	out = append(dst, make([]byte, len(src)/2)...)
	if ok, upper = Decode(out[n:], src); !ok {
		return dst, false, false
	}
	return out, true, upper
}
