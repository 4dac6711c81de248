package ima

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// MarshalJSON writes the entry in the form `imago log show --json` prints,
// one object per entry, fields in template order:
//
//	{"pcr":10,"template_digest":"<hex>","template":"ima-sig","violation":false,
//	 "file_digest":"sha256:<hex>","name":"/usr/bin/ls",
//	 "fields":{"d-ng":{"algorithm":"sha256","digest":"<hex>"},
//	           "n-ng":"/usr/bin/ls",
//	           "sig":{"type":3,"version":2,"hash_algorithm":"sha256",
//	                  "keyid":"d3320449","sig_size":103,"signature":"<hex>","raw":"<hex>"}}}
//
// file_digest ("<alg>:<hex>", also for the legacy d field) and name are the
// convenience values a Keylime runtime policy
// is keyed on (absent when the template has no such field). Field values:
// digests as {"type"?, "algorithm", "digest"}; names as strings (or
// {"hex":...} if not UTF-8); sig/evmsig as the decoded header plus "raw"
// (or {"raw", "error"} if it does not parse, null if empty); buf and
// modsig as {"hex", "text"?} ("text" when the bytes are printable UTF-8);
// iuid/igid/imode as numbers; xattrnames as a list, xattrlengths as
// numbers, xattrvalues as hex. A field that does not decode is
// {"raw":"<hex>","error":"..."}. A repeated field id gets a "#2" suffix.
func (e *Entry) MarshalJSON() ([]byte, error) {
	return AppendJSON(nil, e), nil
}

// AppendJSON appends e's JSON form (see Entry.MarshalJSON) to dst.
func AppendJSON(dst []byte, e *Entry) []byte {
	dst = append(dst, `{"pcr":`...)
	dst = strconv.AppendUint(dst, uint64(e.PCR), 10)
	dst = append(dst, `,"template_digest":"`...)
	dst = hex.AppendEncode(dst, e.Digest)
	dst = append(dst, `","template":`...)
	dst = appendJSONString(dst, e.Template)
	dst = append(dst, `,"violation":`...)
	dst = strconv.AppendBool(dst, e.IsViolation())
	if d, err := e.FileDigest(); err == nil {
		dst = append(dst, `,"file_digest":`...)
		// Always "<alg>:<hex>" (or "<type>:<alg>:<hex>"), also for a
		// legacy d field, which the kernel prints as bare hex.
		d.legacy = false
		dst = appendJSONString(dst, d.String())
	}
	if n, err := e.Name(); err == nil {
		dst = append(dst, `,"name":`...)
		dst = appendJSONBytes(dst, []byte(n))
	}
	dst = append(dst, `,"fields":{`...)
	order := e.byteOrder()
	for i, f := range e.Fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		key := f.ID
		seen := 1
		for _, g := range e.Fields[:i] {
			if g.ID == f.ID {
				seen++
			}
		}
		if seen > 1 {
			key += "#" + strconv.Itoa(seen)
		}
		dst = appendJSONString(dst, key)
		dst = append(dst, ':')
		dst = appendFieldJSON(dst, f, order)
	}
	return append(dst, "}}"...)
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

// appendJSONBytes writes b as a JSON string if it is valid UTF-8, else as
// {"hex":...}.
func appendJSONBytes(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return appendJSONString(dst, string(b))
	}
	dst = append(dst, `{"hex":"`...)
	dst = hex.AppendEncode(dst, b)
	return append(dst, `"}`...)
}

func appendRawErr(dst, raw []byte, err error) []byte {
	dst = append(dst, `{"raw":"`...)
	dst = hex.AppendEncode(dst, raw)
	dst = append(dst, `","error":`...)
	dst = appendJSONString(dst, err.Error())
	return append(dst, '}')
}

func appendFieldJSON(dst []byte, f Field, order binary.ByteOrder) []byte {
	switch f.ID {
	case FieldD, FieldDNG, FieldDNGv2, FieldDModsig:
		if len(f.Data) == 0 {
			return append(dst, "null"...)
		}
		d, err := ParseDigestField(f.ID, f.Data)
		if err != nil {
			return appendRawErr(dst, f.Data, err)
		}
		dst = append(dst, '{')
		if d.Type != "" {
			dst = append(dst, `"type":`...)
			dst = appendJSONString(dst, d.Type)
			dst = append(dst, ',')
		}
		dst = append(dst, `"algorithm":`...)
		dst = appendJSONString(dst, d.Alg.String())
		dst = append(dst, `,"digest":"`...)
		dst = hex.AppendEncode(dst, d.Sum)
		return append(dst, `"}`...)
	case FieldN, FieldNNG:
		return appendJSONBytes(dst, []byte(cString(f.Data)))
	case FieldXattrNames:
		dst = append(dst, '[')
		for i, n := range ParseXattrNames(f.Data) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONBytes(dst, []byte(n))
		}
		return append(dst, ']')
	case FieldSig, FieldEVMSig:
		if len(f.Data) == 0 {
			return append(dst, "null"...)
		}
		h, err := ParseSigHeader(f.Data)
		if err != nil {
			return appendRawErr(dst, f.Data, err)
		}
		dst = append(dst, `{"type":`...)
		dst = strconv.AppendUint(dst, uint64(h.Type), 10)
		dst = append(dst, `,"version":`...)
		dst = strconv.AppendUint(dst, uint64(h.Version), 10)
		dst = append(dst, `,"hash_algorithm":`...)
		dst = appendJSONString(dst, h.HashAlg.String())
		dst = append(dst, `,"keyid":"`...)
		dst = hex.AppendEncode(dst, []byte{byte(h.KeyID >> 24), byte(h.KeyID >> 16), byte(h.KeyID >> 8), byte(h.KeyID)})
		dst = append(dst, `","sig_size":`...)
		dst = strconv.AppendUint(dst, uint64(h.SigSize), 10)
		dst = append(dst, `,"signature":"`...)
		dst = hex.AppendEncode(dst, h.Signature)
		dst = append(dst, `","raw":"`...)
		dst = hex.AppendEncode(dst, f.Data)
		return append(dst, `"}`...)
	case FieldBuf, FieldModsig:
		if f.ID == FieldModsig && len(f.Data) == 0 {
			return append(dst, "null"...)
		}
		dst = append(dst, `{"hex":"`...)
		dst = hex.AppendEncode(dst, f.Data)
		dst = append(dst, '"')
		if len(f.Data) > 0 && printableText(f.Data) {
			dst = append(dst, `,"text":`...)
			dst = appendJSONString(dst, string(f.Data))
		}
		return append(dst, '}')
	case FieldIUID, FieldIGID, FieldIMode:
		if len(f.Data) == 0 {
			return append(dst, "null"...)
		}
		var v uint64
		switch len(f.Data) {
		case 1:
			v = uint64(f.Data[0])
		case 2:
			v = uint64(order.Uint16(f.Data))
		case 4:
			v = uint64(order.Uint32(f.Data))
		case 8:
			v = order.Uint64(f.Data)
		default:
			return appendRawErr(dst, f.Data, malformed("%s field of %d bytes, want 1, 2, 4 or 8", f.ID, len(f.Data)))
		}
		return strconv.AppendUint(dst, v, 10)
	case FieldXattrLengths:
		if len(f.Data)%4 != 0 {
			return appendRawErr(dst, f.Data, malformed("xattrlengths field of %d bytes is not a multiple of 4", len(f.Data)))
		}
		dst = append(dst, '[')
		for i := 0; i < len(f.Data); i += 4 {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendUint(dst, uint64(order.Uint32(f.Data[i:])), 10)
		}
		return append(dst, ']')
	}
	// xattrvalues and anything else: hex.
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, f.Data)
	return append(dst, '"')
}

// printableText reports whether b is valid UTF-8 without control characters
// other than tab and newline.
func printableText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f {
			return false
		}
	}
	return true
}
