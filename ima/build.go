package ima

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/imago-ima/imago/pcr"
)

// NewEntry builds an entry the way the kernel does (ima-spec.md §3.3, §4.1):
// template data from the fields in the template's order, each as u32 length
// (in order) || data, or for the legacy "ima" template d || name; Digest is
// the SHA-1 template digest the classic list shows (use ForBank for a
// per-bank list). fields must match the template's field ids one for one;
// build them with DigestNG, NameNG, Sig, Buf, UID, ....
//
// template is a built-in name or a custom format string. order is the
// producer's byte order (binary.NativeEndian, or LittleEndian under
// ima_canonical_fmt); nil means little-endian. To record a violation, set
// Digest to zeros afterwards (the kernel does not hash violations, §5.2).
func NewEntry(template string, order binary.ByteOrder, pcrIndex uint32, fields ...Field) (*Entry, error) {
	t, err := LookupTemplate(template)
	if err != nil {
		return nil, fmt.Errorf("ima: new entry: %w", err)
	}
	if order == nil {
		order = binary.LittleEndian
	}
	if pcrIndex > MaxPCRIndex {
		return nil, fmt.Errorf("ima: new entry: pcr index %d exceeds %d", pcrIndex, MaxPCRIndex)
	}
	if len(fields) != len(t.Fields) {
		return nil, fmt.Errorf("ima: new entry: template %s has %d fields, got %d", t.Name, len(t.Fields), len(fields))
	}
	for i, f := range fields {
		if f.ID != t.Fields[i] {
			return nil, fmt.Errorf("ima: new entry: field %d of template %s is %s, got %q", i, t.Name, t.Fields[i], f.ID)
		}
	}
	var e *Entry
	if t.IsLegacy() {
		d, n := fields[0].Data, fields[1].Data
		n = bytes.TrimSuffix(n, []byte{0})
		if len(d) != 20 {
			return nil, fmt.Errorf("ima: new entry: legacy d field of %d bytes, want 20", len(d))
		}
		if len(n) > MaxEventNameLen {
			return nil, fmt.Errorf("ima: new entry: legacy name of %d bytes exceeds %d", len(n), MaxEventNameLen)
		}
		buf := make([]byte, 20, 20+20+len(n))
		buf = append(append(buf, d...), n...)
		var fs []Field
		e, fs = newEntry(2)
		e.Data = buf[20:]
		e.Digest = buf[:20:20]
		fs[0] = Field{ID: FieldD, Data: e.Data[:20:20]}
		fs[1] = Field{ID: FieldN, Data: e.Data[20:]}
		e.Fields = fs
	} else {
		total := 20
		for _, f := range fields {
			total += 4 + len(f.Data)
		}
		if total-20 > MaxTemplateDataLen {
			return nil, fmt.Errorf("ima: new entry: %w: template data of %d bytes exceeds %d", ErrTooLarge, total-20, MaxTemplateDataLen)
		}
		buf := make([]byte, 20, total)
		for _, f := range fields {
			buf = appendU32(order, buf, uint32(len(f.Data)))
			buf = append(buf, f.Data...)
		}
		var fs []Field
		e, fs = newEntry(len(fields))
		e.Data = buf[20:]
		e.Digest = buf[:20:20]
		if err := splitFields(e.Data, t, order, fs); err != nil {
			panic("imago: internal error: " + err.Error())
		}
		e.Fields = fs
	}
	e.PCR = pcrIndex
	e.Template = t.Name
	e.Order = order
	e.tmpl = t
	copy(e.Digest, e.TemplateDigest(pcr.SHA1))
	return e, nil
}

// ForBank returns a copy of e whose Digest is the template digest for bank
// b, as binary_runtime_measurements_<b> lists it (§4.4): H_b(hash input), or
// for a violation zeros of the bank's size. For a bank imago cannot compute
// it returns the padded SHA-1 the kernel uses for unmapped banks (§4.3):
// pass a size-known bank.
func (e *Entry) ForBank(b pcr.Bank) *Entry {
	c := *e
	if e.IsViolation() {
		c.Digest = make([]byte, max(b.Size(), 20))
		return &c
	}
	if d := e.TemplateDigest(b); d != nil {
		c.Digest = d
	} else {
		c.Digest = e.TemplateDigest(pcr.SHA1)
	}
	return &c
}

// Reorder returns a copy of e whose Data uses byte order order: field
// lengths, iuid/igid/imode and xattrlengths values are re-encoded, other
// bytes (digests, signatures with their big-endian header) are kept. The
// template digest is recomputed for the bank of e's digest width (a BE host
// hashes BE lengths, §2.2), unless e is a violation, which stays all zeros.
func (e *Entry) Reorder(order binary.ByteOrder) (*Entry, error) {
	if order == nil {
		order = binary.LittleEndian
	}
	old := e.byteOrder()
	fields := make([]Field, len(e.Fields))
	for i, f := range e.Fields {
		d := f.Data
		switch f.ID {
		case FieldIUID, FieldIGID, FieldIMode:
			if v, ok := decodeUint(d, old); ok {
				d = encodeUint(order, v, len(d))
			}
		case FieldXattrLengths:
			if l, err := ParseXattrLengths(d, old); err == nil {
				d = XattrLengths(order, l...).Data
			}
		}
		fields[i] = Field{ID: f.ID, Data: d}
	}
	n, err := NewEntry(e.Template, order, e.PCR, fields...)
	if err != nil {
		return nil, err
	}
	switch {
	case e.IsViolation():
		n.Digest = make([]byte, len(e.Digest))
	case len(e.Digest) != 20:
		b, ok := pcr.BankForSize(len(e.Digest))
		if !ok {
			return nil, fmt.Errorf("ima: reorder: no bank for a %d-byte template digest", len(e.Digest))
		}
		n.Digest = n.TemplateDigest(b)
	}
	return n, nil
}

func encodeUint(order binary.ByteOrder, v uint64, size int) []byte {
	b := make([]byte, size)
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		order.PutUint16(b, uint16(v))
	case 4:
		order.PutUint32(b, uint32(v))
	case 8:
		order.PutUint64(b, v)
	}
	return b
}

// DigestNG returns a d-ng field: "<alg>:" NUL sum (ima-spec.md §3.3).
func DigestNG(alg HashAlg, sum []byte) Field {
	return Field{ID: FieldDNG, Data: algPrefixed(alg.String()+":", sum)}
}

// DigestNGv2 returns a d-ngv2 field: "<typ>:<alg>:" NUL sum, typ "ima" or
// "verity".
func DigestNGv2(typ string, alg HashAlg, sum []byte) Field {
	return Field{ID: FieldDNGv2, Data: algPrefixed(typ+":"+alg.String()+":", sum)}
}

// DigestModsig returns a d-modsig field ("<alg>:" NUL sum), or an empty one
// for a file without an appended signature when sum is nil.
func DigestModsig(alg HashAlg, sum []byte) Field {
	if sum == nil {
		return Field{ID: FieldDModsig}
	}
	return Field{ID: FieldDModsig, Data: algPrefixed(alg.String()+":", sum)}
}

// DigestLegacy returns a legacy d field: the raw 20-byte SHA-1 digest.
func DigestLegacy(sum []byte) Field { return Field{ID: FieldD, Data: bytes.Clone(sum)} }

func algPrefixed(prefix string, sum []byte) []byte {
	b := make([]byte, 0, len(prefix)+1+len(sum))
	b = append(b, prefix...)
	b = append(b, 0)
	return append(b, sum...)
}

// kernelString encodes a DATA_FMT_STRING field as the kernel does
// (ima_write_template_field_data): every ' ' becomes '_' and one NUL is
// appended. The kernel replaces spaces so that ASCII lists stay
// space-separated (ima-spec.md §3.3, §13.5).
func kernelString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	for i := range len(s) {
		if b[i] == ' ' {
			b[i] = '_'
		}
	}
	return b
}

// NameNG returns an n-ng field: name with spaces replaced by '_', plus NUL.
func NameNG(name string) Field { return Field{ID: FieldNNG, Data: kernelString(name)} }

// Name returns a legacy n field (same encoding as n-ng; at most 255 bytes
// for the "ima" template).
func Name(name string) Field { return Field{ID: FieldN, Data: kernelString(name)} }

// Sig returns a sig field: the whole security.ima signature value (type byte
// first), or empty for nil.
func Sig(value []byte) Field { return Field{ID: FieldSig, Data: bytes.Clone(value)} }

// EVMSig returns an evmsig field: the security.evm portable signature.
func EVMSig(value []byte) Field { return Field{ID: FieldEVMSig, Data: bytes.Clone(value)} }

// Buf returns a buf field (ima-buf events, §3.6).
func Buf(b []byte) Field { return Field{ID: FieldBuf, Data: bytes.Clone(b)} }

// Modsig returns a modsig field: the PKCS#7 DER of an appended signature.
func Modsig(p7 []byte) Field { return Field{ID: FieldModsig, Data: bytes.Clone(p7)} }

// UID returns an iuid field: u32 in order.
func UID(order binary.ByteOrder, uid uint32) Field {
	return Field{ID: FieldIUID, Data: encodeUint(orDefault(order), uint64(uid), 4)}
}

// GID returns an igid field: u32 in order.
func GID(order binary.ByteOrder, gid uint32) Field {
	return Field{ID: FieldIGID, Data: encodeUint(orDefault(order), uint64(gid), 4)}
}

// Mode returns an imode field: u16 in order.
func Mode(order binary.ByteOrder, mode uint16) Field {
	return Field{ID: FieldIMode, Data: encodeUint(orDefault(order), uint64(mode), 2)}
}

// XattrNames returns an xattrnames field: names joined by '|' plus NUL, or
// empty when there are none.
func XattrNames(names ...string) Field {
	if len(names) == 0 {
		return Field{ID: FieldXattrNames}
	}
	return Field{ID: FieldXattrNames, Data: kernelString(strings.Join(names, "|"))}
}

// XattrLengths returns an xattrlengths field: one u32 per xattr in order.
func XattrLengths(order binary.ByteOrder, lens ...uint32) Field {
	order = orDefault(order)
	b := make([]byte, 0, 4*len(lens))
	for _, l := range lens {
		b = appendU32(order, b, l)
	}
	return Field{ID: FieldXattrLengths, Data: b}
}

// XattrValues returns an xattrvalues field: the values concatenated.
func XattrValues(values ...[]byte) Field {
	return Field{ID: FieldXattrValues, Data: bytes.Join(values, nil)}
}

func orDefault(o binary.ByteOrder) binary.ByteOrder {
	if o == nil {
		return binary.LittleEndian
	}
	return o
}
