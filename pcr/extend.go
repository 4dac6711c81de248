package pcr

import "hash"

// Extend returns H_bank(old || digest), the TPM2_PCR_Extend operation
// (TPM 2.0 Part 1, §17.2). digest must be exactly b.Size() bytes; old is the
// current PCR value.
func Extend(b Bank, old, digest []byte) []byte {
	h := b.New()
	h.Write(old)
	h.Write(digest)
	return h.Sum(nil)
}

// Extender extends one bank repeatedly with a reused hash state, for hot paths.
type Extender struct {
	h   hash.Hash
	buf []byte
}

// NewExtender returns an Extender for the bank, or nil for an unknown bank.
func NewExtender(b Bank) *Extender {
	h := b.New()
	if h == nil {
		return nil
	}
	return &Extender{h: h, buf: make([]byte, 0, h.Size())}
}

// Extend replaces value (len = bank size) with H(value || digest) in place.
func (e *Extender) Extend(value, digest []byte) {
	e.h.Reset()
	e.h.Write(value)
	e.h.Write(digest)
	e.buf = e.h.Sum(e.buf[:0])
	copy(value, e.buf)
}

// Zero returns a bank-sized zero value, the reset state of PCRs 0-16 and 23.
func Zero(b Bank) []byte { return make([]byte, b.Size()) }

// ViolationDigest returns what the kernel extends for a violation entry in bank
// b (ima-spec.md §5.2): 0xFF repeated over the bank's digest size. For a bank
// the kernel cannot compute, pass the bank's size as size and mapped=false: the
// value is then 0xFF×20 followed by zeros.
func ViolationDigest(size int, mapped bool) []byte {
	d := make([]byte, size)
	n := size
	if !mapped && n > 20 {
		n = 20
	}
	for i := range n {
		d[i] = 0xff
	}
	return d
}
