package pcr

import (
	"encoding"
	"encoding/binary"
	"hash"
	"sync"
)

// Hasher computes one bank's hash of short messages many times over: the
// inner loop of a verifier (template digests of about 100 bytes, extends of
// two digests). Not safe for concurrent use; make one per goroutine.
//
// For SHA-1 and SHA-256, the banks of almost every TPM, it hashes a message
// padded by the caller (AppendPadding) with one Write of whole blocks and
// reads the digest out of the hash state, as its AppendBinary encoding holds
// it: the chaining value after the last block of a padded message is the
// digest (FIPS 180-4 §5.1.1, §6.1.2, §6.2.2). That takes a third less time
// than Sum, which pads and finalises a copy of the state block by block. The
// layout of the encoding is checked once per process, against
// the hash's own Sum; should it ever differ, and for every other bank, the
// Hasher uses Bank.Sum.
type Hasher struct {
	bank  Bank
	size  int
	h     stateHash // nil: Bank.Sum
	magic int       // bytes before the chaining value in the encoding
	buf   []byte    // Sum's padded message
	st    []byte    // the encoded state
	ext   []byte    // Extend's padded message: value || digest || padding
}

// stateHash is a hash whose state can be read (crypto/sha1, crypto/sha256).
type stateHash interface {
	hash.Hash
	encoding.BinaryAppender
}

// NewHasher returns a Hasher for the bank (one whose Sum reports false for
// a bank imago cannot compute).
func (b Bank) NewHasher() *Hasher {
	if ok := stateReadable[b]; ok != nil && ok() {
		return b.stateHasher()
	}
	return &Hasher{bank: b, size: b.Size()}
}

// stateReadable says, per bank, whether a Hasher can read the digest out
// of the hash state in this build: the layout is the standard library's,
// fixed when the program is built, so it is checked once per process (a
// verifier makes Hashers every round).
var stateReadable = map[Bank]func() bool{
	SHA1:   sync.OnceValue(SHA1.stateReadable),
	SHA256: sync.OnceValue(SHA256.stateReadable),
}

// stateHasher returns a Hasher that reads the hash state, unchecked.
func (b Bank) stateHasher() *Hasher {
	h := &Hasher{bank: b, size: b.Size()}
	sh, ok := b.New().(stateHash)
	if !ok {
		return h
	}
	h.h = sh
	h.magic = 4 // "sha\x01" (sha1), "sha\x03" (sha256): crypto/sha1, crypto/sha256 marshal.go
	h.ext = AppendPadding(make([]byte, 2*h.size, 128), 2*h.size)
	return h
}

// stateReadable checks a state-reading Hasher against the hash's own Sum
// on a message of two blocks and one of one block.
func (b Bank) stateReadable() bool {
	h := b.stateHasher()
	for _, n := range []int{100, 2 * h.size} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i*7 + n)
		}
		var want, got [MaxDigestSize]byte
		b.Sum(&want, msg)
		h.SumPadded(&got, AppendPadding(msg, n), n)
		if h.h == nil || want != got {
			return false
		}
	}
	return true
}

// Bank returns the Hasher's bank.
func (h *Hasher) Bank() Bank { return h.bank }

// AppendPadding appends to b the padding that SHA-1 and SHA-256 (and SM3)
// put after a message of n bytes: 0x80, zeros up to 56 bytes mod 64, and
// the message's length in bits, big-endian (FIPS 180-4 §5.1.1). b holding
// the message, the result is what SumPadded takes.
func AppendPadding(b []byte, n int) []byte {
	b = append(b, 0x80)
	z := (55 - n) & 63 // zeros: (n + 1 + z) % 64 == 56
	b = append(b, zeros[:z]...)
	return binary.BigEndian.AppendUint64(b, uint64(n)*8)
}

var zeros [64]byte

// Sum writes the bank's hash of data to dst and reports whether the bank is
// one imago can compute.
func (h *Hasher) Sum(dst *[MaxDigestSize]byte, data []byte) bool {
	if h.h == nil {
		return h.bank.Sum(dst, data)
	}
	h.buf = AppendPadding(append(h.buf[:0], data...), len(data))
	h.SumPadded(dst, h.buf, len(data))
	return true
}

// SumPadded writes the bank's hash of the message p[:n] to dst, where p is
// the message followed by AppendPadding(n): one padded message serves every
// bank of 64-byte blocks.
func (h *Hasher) SumPadded(dst *[MaxDigestSize]byte, p []byte, n int) bool {
	if h.h == nil {
		return h.bank.Sum(dst, p[:n])
	}
	h.h.Reset()
	h.h.Write(p)
	h.st, _ = h.h.AppendBinary(h.st[:0])
	copy(dst[:h.size], h.st[h.magic:])
	return true
}

// Extend replaces value (the bank's size) with H(value || digest), the
// TPM's PCR extend (TPM 2.0 Part 1 §17.2); digest is the bank's size.
func (h *Hasher) Extend(value *[MaxDigestSize]byte, digest []byte) {
	if h.h == nil {
		var buf [2 * MaxDigestSize]byte
		copy(buf[:h.size], value[:h.size])
		copy(buf[h.size:], digest)
		h.bank.Sum(value, buf[:2*h.size])
		return
	}
	copy(h.ext, value[:h.size])
	copy(h.ext[h.size:2*h.size], digest)
	h.SumPadded(value, h.ext, 2*h.size)
}

// fastPath reports whether the Hasher reads the state (for tests).
func (h *Hasher) fastPath() bool { return h.h != nil }
