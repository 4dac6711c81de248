// Package sm3 implements the SM3 hash (GB/T 32905-2016, also ISO/IEC 10118-3),
// which TPM 2.0 offers as the sm3_256 PCR bank. The standard library has no SM3;
// this is a small, allocation-free implementation of hash.Hash.
package sm3

import (
	"encoding/binary"
	"hash"
	"math/bits"
)

// Size is the size of an SM3 digest in bytes.
const Size = 32

// BlockSize is the block size of SM3 in bytes.
const BlockSize = 64

var iv = [8]uint32{
	0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600,
	0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e,
}

type digest struct {
	h   [8]uint32
	x   [BlockSize]byte
	nx  int
	len uint64
}

// New returns a new hash.Hash computing the SM3 digest.
func New() hash.Hash {
	d := new(digest)
	d.Reset()
	return d
}

// Sum returns the SM3 digest of data.
func Sum(data []byte) [Size]byte {
	var d digest
	d.Reset()
	d.Write(data)
	var out [Size]byte
	d.checkSum(&out)
	return out
}

func (d *digest) Reset() {
	d.h = iv
	d.nx = 0
	d.len = 0
}

func (d *digest) Size() int      { return Size }
func (d *digest) BlockSize() int { return BlockSize }

func (d *digest) Write(p []byte) (int, error) {
	n := len(p)
	d.len += uint64(n)
	if d.nx > 0 {
		c := copy(d.x[d.nx:], p)
		d.nx += c
		p = p[c:]
		if d.nx == BlockSize {
			block(&d.h, d.x[:])
			d.nx = 0
		}
	}
	for len(p) >= BlockSize {
		block(&d.h, p[:BlockSize])
		p = p[BlockSize:]
	}
	if len(p) > 0 {
		d.nx = copy(d.x[:], p)
	}
	return n, nil
}

func (d *digest) Sum(in []byte) []byte {
	d0 := *d
	var out [Size]byte
	d0.checkSum(&out)
	return append(in, out[:]...)
}

func (d *digest) checkSum(out *[Size]byte) {
	bitLen := d.len << 3
	var pad [BlockSize + 8]byte
	pad[0] = 0x80
	n := 56 - int(d.len%64)
	if n <= 0 {
		n += 64
	}
	binary.BigEndian.PutUint64(pad[n:], bitLen)
	d.Write(pad[:n+8])
	for i, v := range d.h {
		binary.BigEndian.PutUint32(out[i*4:], v)
	}
}

func p0(x uint32) uint32 { return x ^ bits.RotateLeft32(x, 9) ^ bits.RotateLeft32(x, 17) }
func p1(x uint32) uint32 { return x ^ bits.RotateLeft32(x, 15) ^ bits.RotateLeft32(x, 23) }

// block compresses one 64-byte block (GB/T 32905 section 5.3).
func block(h *[8]uint32, p []byte) {
	var w [68]uint32
	var w1 [64]uint32
	for i := 0; i < 16; i++ {
		w[i] = binary.BigEndian.Uint32(p[4*i:])
	}
	for i := 16; i < 68; i++ {
		w[i] = p1(w[i-16]^w[i-9]^bits.RotateLeft32(w[i-3], 15)) ^ bits.RotateLeft32(w[i-13], 7) ^ w[i-6]
	}
	for i := 0; i < 64; i++ {
		w1[i] = w[i] ^ w[i+4]
	}
	a, b, c, dd, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
	for j := 0; j < 64; j++ {
		var t uint32 = 0x79cc4519
		if j >= 16 {
			t = 0x7a879d8a
		}
		ss1 := bits.RotateLeft32(bits.RotateLeft32(a, 12)+e+bits.RotateLeft32(t, j%32), 7)
		ss2 := ss1 ^ bits.RotateLeft32(a, 12)
		var ff, gg uint32
		if j < 16 {
			ff = a ^ b ^ c
			gg = e ^ f ^ g
		} else {
			ff = (a & b) | (a & c) | (b & c)
			gg = (e & f) | (^e & g)
		}
		tt1 := ff + dd + ss2 + w1[j]
		tt2 := gg + hh + ss1 + w[j]
		dd = c
		c = bits.RotateLeft32(b, 9)
		b = a
		a = tt1
		hh = g
		g = bits.RotateLeft32(f, 19)
		f = e
		e = p0(tt2)
	}
	h[0] ^= a
	h[1] ^= b
	h[2] ^= c
	h[3] ^= dd
	h[4] ^= e
	h[5] ^= f
	h[6] ^= g
	h[7] ^= hh
}
