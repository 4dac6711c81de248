package ima

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Digest is a digest with its algorithm: the decoded form of d, d-ng,
// d-ngv2 and d-modsig fields (ima-spec.md §3.3). It prints as the kernel
// does: "sha256:<hex>", "ima:sha256:<hex>", or plain hex for d.
type Digest struct {
	// Type is "ima" or "verity" for d-ngv2, empty otherwise.
	Type string
	// Alg is the hash algorithm. For a legacy d field it is sha1 (20
	// bytes) or md5 (16 bytes).
	Alg HashAlg
	// Sum is the digest; it aliases the entry's Data when decoded.
	Sum []byte

	legacy bool
}

// String returns "<alg>:<hex>", "<type>:<alg>:<hex>", or for a legacy d
// field just "<hex>".
func (d Digest) String() string {
	if d.legacy {
		return hex.EncodeToString(d.Sum)
	}
	s := d.Alg.String() + ":" + hex.EncodeToString(d.Sum)
	if d.Type != "" {
		s = d.Type + ":" + s
	}
	return s
}

// IsZero reports whether Sum is all zeros (a violation, or a TPM-bypass boot
// aggregate).
func (d Digest) IsZero() bool {
	for _, b := range d.Sum {
		if b != 0 {
			return false
		}
	}
	return true
}

// ErrNoField reports that an entry's template has no field of the kind asked
// for.
var ErrNoField = errors.New("ima: template has no such field")

// ParseDigestField decodes a digest field's data:
//
//   - d: the raw digest (sha1, or md5 if 16 bytes);
//   - d-ng, d-modsig: "<alg>:" NUL digest;
//   - d-ngv2: "<ima|verity>:<alg>:" NUL digest.
//
// The digest length must equal the algorithm's size (ima-spec.md §13.4).
// An empty d-modsig gives ErrNoField (no appended signature).
func ParseDigestField(id string, data []byte) (Digest, error) {
	switch id {
	case FieldD:
		switch len(data) {
		case 20:
			return Digest{Alg: HashSHA1, Sum: data, legacy: true}, nil
		case 16:
			return Digest{Alg: HashMD5, Sum: data, legacy: true}, nil
		}
		return Digest{}, malformed("d field of %d bytes, want 20 (sha1) or 16 (md5)", len(data))
	case FieldDNG, FieldDModsig, FieldDNGv2:
	default:
		return Digest{}, fmt.Errorf("ima: %s is not a digest field", id)
	}
	if len(data) == 0 {
		return Digest{}, fmt.Errorf("%w: empty %s field", ErrNoField, id)
	}
	z := bytes.IndexByte(data, 0)
	if z < 1 || data[z-1] != ':' {
		return Digest{}, malformed("%s field: want \"<alg>:\" NUL digest", id)
	}
	prefix := data[:z-1] // without the final ':'
	sum := data[z+1:]
	var d Digest
	if id == FieldDNGv2 {
		c := bytes.IndexByte(prefix, ':')
		if c < 0 {
			return Digest{}, malformed("d-ngv2 field: want \"<type>:<alg>:\" prefix, got %q", prefix)
		}
		switch string(prefix[:c]) {
		case "ima":
			d.Type = "ima"
		case "verity":
			d.Type = "verity"
		default:
			return Digest{}, malformed("d-ngv2 field: digest type %q, want ima or verity", prefix[:c])
		}
		prefix = prefix[c+1:]
	}
	alg, ok := lookupHashAlg(prefix)
	if !ok {
		return Digest{}, malformed("%s field: unknown hash algorithm %q", id, prefix)
	}
	if len(sum) != alg.Size() {
		return Digest{}, malformed("%s field: %s digest of %d bytes, want %d", id, alg, len(sum), alg.Size())
	}
	d.Alg, d.Sum = alg, sum
	return d, nil
}

// SigHeader is the header of a signature in a sig, evmsig or modsig-less
// xattr value (kernel struct signature_v2_hdr, ima-spec.md §10.1): type,
// version, hash algorithm, key id and size, all big-endian whatever the list's
// byte order.
type SigHeader struct {
	Type      uint8   // 0x03 EVM_IMA_XATTR_DIGSIG, 0x05 portable, 0x06 verity
	Version   uint8   // 2, or 3 (sigv3)
	HashAlg   HashAlg // enum hash_algo
	KeyID     uint32  // last 4 bytes of the signer's SubjectKeyIdentifier
	SigSize   uint16  // bytes of Signature
	Signature []byte  // aliases the field data
}

// sigHeaderLen is sizeof(struct signature_v2_hdr) including the type byte.
const sigHeaderLen = 9

// ParseSigHeader decodes a signature xattr value as stored in a sig or
// evmsig field. The sig_size must equal the bytes that follow the header.
// Errors are *SigHeaderError (with the byte offset) wrapping ErrMalformed.
// It is the one parser of this header; package ima/digsig builds on it.
func ParseSigHeader(b []byte) (SigHeader, error) {
	if len(b) < sigHeaderLen {
		return SigHeader{}, sigMalformed(len(b), "signature of %d bytes is shorter than its %d-byte header", len(b), sigHeaderLen)
	}
	h := SigHeader{
		Type:      b[0],
		Version:   b[1],
		HashAlg:   HashAlg(b[2]),
		KeyID:     binary.BigEndian.Uint32(b[3:]),
		SigSize:   binary.BigEndian.Uint16(b[7:]),
		Signature: b[sigHeaderLen:],
	}
	switch h.Type {
	case 0x03, 0x05, 0x06:
	default:
		return SigHeader{}, sigMalformed(0, "signature type 0x%02x, want 0x03, 0x05 or 0x06", h.Type)
	}
	if h.Version != 2 && h.Version != 3 {
		return SigHeader{}, sigMalformed(1, "signature version %d, want 2 or 3", h.Version)
	}
	if int(h.SigSize) != len(h.Signature) {
		return SigHeader{}, sigMalformed(7, "signature size field %d, but %d bytes follow the header", h.SigSize, len(h.Signature))
	}
	return h, nil
}

// Field returns the data of the first field with the given id.
func (e *Entry) Field(id string) ([]byte, bool) {
	for _, f := range e.Fields {
		if f.ID == id {
			return f.Data, true
		}
	}
	return nil, false
}

// FileDigest returns the entry's file (or buffer) digest: the d-ng, d-ngv2
// or d field, whichever the template has. For a violation it is the zeroed
// digest the kernel wrote.
func (e *Entry) FileDigest() (Digest, error) {
	for _, f := range e.Fields {
		switch f.ID {
		case FieldDNG, FieldDNGv2, FieldD:
			return ParseDigestField(f.ID, f.Data)
		}
	}
	return Digest{}, ErrNoField
}

// Name returns the event name: the n-ng or n field without its NUL, i.e.
// the file path (with spaces replaced by '_' by the kernel), or for buffer
// events the event name (kernel_version, .ima, ...).
func (e *Entry) Name() (string, error) {
	for _, f := range e.Fields {
		switch f.ID {
		case FieldNNG, FieldN:
			return cString(f.Data), nil
		}
	}
	return "", ErrNoField
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if z := bytes.IndexByte(b, 0); z >= 0 {
		b = b[:z]
	}
	return string(b)
}

// Signature returns the decoded sig field (or evmsig if the template has no
// sig): the header and the raw field data. An empty field gives ErrNoField.
// If the data does not parse as a header, raw is still returned with the
// error.
func (e *Entry) Signature() (h SigHeader, raw []byte, err error) {
	raw, ok := e.Field(FieldSig)
	if !ok {
		raw, ok = e.Field(FieldEVMSig)
	}
	if !ok || len(raw) == 0 {
		return SigHeader{}, nil, ErrNoField
	}
	h, err = ParseSigHeader(raw)
	return h, raw, err
}

// Uint returns an iuid, igid or imode field as a number, read as u8, u16,
// u32 or u64 by its length in the entry's byte order (DATA_FMT_UINT).
func (e *Entry) Uint(id string) (uint64, error) {
	b, ok := e.Field(id)
	if !ok || len(b) == 0 {
		return 0, ErrNoField
	}
	v, ok := decodeUint(b, e.byteOrder())
	if !ok {
		return 0, malformed("%s field of %d bytes, want 1, 2, 4 or 8", id, len(b))
	}
	return v, nil
}

// ParseXattrNames splits an xattrnames field: names joined by '|' with one
// trailing NUL (ima-spec.md §3.3). An empty field gives no names.
func ParseXattrNames(b []byte) []string {
	s := cString(b)
	if s == "" {
		return nil
	}
	var out []string
	for len(s) > 0 {
		i := bytes.IndexByte([]byte(s), '|')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return out
}

// ParseXattrLengths decodes an xattrlengths field: one u32 per xattr in the
// list's byte order.
func ParseXattrLengths(b []byte, order binary.ByteOrder) ([]uint32, error) {
	if len(b)%4 != 0 {
		return nil, malformed("xattrlengths field of %d bytes is not a multiple of 4", len(b))
	}
	if order == nil {
		order = binary.LittleEndian
	}
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = order.Uint32(b[4*i:])
	}
	return out, nil
}

// XattrValue is one EVM-protected xattr of an evm-sig entry.
type XattrValue struct {
	Name  string
	Value []byte
}

// Xattrs decodes the xattrnames, xattrlengths and xattrvalues fields
// together: the lengths must match the names and sum to the values.
func (e *Entry) Xattrs() ([]XattrValue, error) {
	nb, ok := e.Field(FieldXattrNames)
	if !ok {
		return nil, ErrNoField
	}
	names := ParseXattrNames(nb)
	lb, _ := e.Field(FieldXattrLengths)
	lens, err := ParseXattrLengths(lb, e.byteOrder())
	if err != nil {
		return nil, err
	}
	vals, _ := e.Field(FieldXattrValues)
	if len(lens) != len(names) {
		return nil, malformed("%d xattr names but %d lengths", len(names), len(lens))
	}
	out := make([]XattrValue, len(names))
	off := 0
	for i, n := range names {
		l := int(lens[i])
		if l > len(vals)-off {
			return nil, malformed("xattr %s length %d exceeds the %d value bytes left", n, l, len(vals)-off)
		}
		out[i] = XattrValue{Name: n, Value: vals[off : off+l]}
		off += l
	}
	if off != len(vals) {
		return nil, malformed("xattr lengths sum to %d, values have %d bytes", off, len(vals))
	}
	return out, nil
}

// IsBootAggregate reports whether the entry is a boot aggregate record
// (name boot_aggregate or, with the pending late-init series,
// boot_aggregate_late; ima-spec.md §6).
func (e *Entry) IsBootAggregate() bool {
	n, err := e.Name()
	return err == nil && (n == "boot_aggregate" || n == "boot_aggregate_late")
}

// Descriptor returns the entry's template descriptor, or an error wrapping
// ErrUnknownTemplate.
func (e *Entry) Descriptor() (*Template, error) {
	if e.tmpl != nil {
		return e.tmpl, nil
	}
	return LookupTemplate(e.Template)
}
