package ima

import (
	"encoding/binary"
	"hash"

	"github.com/imago-ima/imago/pcr"
)

// Entry is one record of a measurement list (ima-spec.md §2.3).
type Entry struct {
	// PCR is the PCR index the entry was extended into.
	PCR uint32
	// Digest is the template digest as listed: 20 bytes in the classic
	// (sha1) list, the bank's digest size in a per-bank list. All zeros marks
	// a violation (§5.2).
	Digest []byte
	// Template is the template name as listed: a descriptor name ("ima-ng"),
	// or for a custom ima_template_fmt the format string ("d-ng|n-ng|iuid").
	Template string
	// Data is the template data. For every template but "ima" it is the
	// u32-length-prefixed fields exactly as the kernel hashed them (§4.1).
	// For "ima" it is d (20 bytes) followed by the name bytes, no NUL.
	Data []byte
	// Fields is Data split into the template's named fields. The slices
	// alias Data. For "ima" the n field is the name without its NUL, as the
	// record carries it.
	Fields []Field
	// Order is the byte order of the integers inside Data (field lengths,
	// iuid, igid, imode, xattrlengths): the producer's native order, or
	// little-endian under ima_canonical_fmt (§2.2). Readers set it; nil means
	// little-endian.
	Order binary.ByteOrder

	tmpl *Template // descriptor, set by readers and NewEntry
}

// IsViolation reports whether the listed template digest is all zeros, the
// kernel's mark for a violation entry (§5.2).
func (e *Entry) IsViolation() bool {
	for _, b := range e.Digest {
		if b != 0 {
			return false
		}
	}
	return true
}

var zeros256 [256]byte

// WriteHashInput writes the bytes whose hash is the template digest (§4.1) to
// h: Data itself, or for the legacy "ima" template d || name zero-padded to
// 256 bytes.
func (e *Entry) WriteHashInput(h hash.Hash) {
	if e.Template != "ima" || len(e.Data) < 20 {
		h.Write(e.Data)
		return
	}
	name := e.Data[20:]
	h.Write(e.Data)
	if len(name) < 256 {
		h.Write(zeros256[:256-len(name)])
	}
}

// TemplateDigest computes the entry's template digest for bank b, as the
// kernel extends it into that bank (§4.3): H_b(hash input) for a bank imago can
// compute. It returns nil for an unknown bank.
func (e *Entry) TemplateDigest(b pcr.Bank) []byte {
	h := b.New()
	if h == nil {
		return nil
	}
	e.WriteHashInput(h)
	return h.Sum(nil)
}

// ExtendDigest returns what the kernel extends for e into a PCR bank b whose
// digests are size bytes (ima-spec.md §4.3, §4.4, §5.2): for a violation
// (all-zero listed digest) 0xFF over the bank's size, or 0xFF×20 then zeros
// for a bank imago cannot hash; otherwise H_b(hash input) for a bank imago
// can hash, else the SHA-1 template digest zero-padded (or cut) to size.
func (e *Entry) ExtendDigest(b pcr.Bank, size int) []byte {
	if e.IsViolation() {
		return pcr.ViolationDigest(size, b.Known())
	}
	if b.Known() {
		return e.TemplateDigest(b)
	}
	d := make([]byte, size)
	copy(d, e.TemplateDigest(pcr.SHA1))
	return d
}
