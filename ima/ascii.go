package ima

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"iter"
	"strconv"
)

// MaxASCIILineLen bounds one line of an ASCII list: the hex form of the
// largest template data plus the fixed columns.
const MaxASCIILineLen = 2*MaxTemplateDataLen + 4096

// ASCIIReader reads an ASCII measurement list (ascii_runtime_measurements
// [_<algo>], ima-spec.md §2.4), one entry per line, and rebuilds each entry's
// template data from the printed fields so that Entry.Data, Fields and
// TemplateDigest work as for a binary list. Lengths and integers in the
// rebuilt data use ReaderOptions.Order (little-endian if nil), since the
// ASCII form does not say which order the producer used.
//
// Every field kind the kernel prints is parsed back (§2.4): "alg:hex" and
// "ima:alg:hex" digests, hex blobs, decimal iuid/igid/imode, and strings.
// Strings with spaces (written by producers other than the kernel, which
// replaces ' ' with '_') are taken whole: the fields before the first string
// field are taken from the left, those after it from the right, and what is
// left in the middle is the string. A line whose trailing empty fields were
// stripped (a tool trimmed the final space of an ima-sig line) is accepted
// with those fields empty; Lenient counts such lines.
//
// Offset returns the line number; errors are *FormatError naming the line.
type ASCIIReader struct {
	br    *bufio.Reader
	opts  ReaderOptions
	order binary.ByteOrder

	line    int64
	n       int
	err     error
	lenient int
	noFinal bool
	dsize   int
	tc      templateCache

	lineBuf []byte
	scratch []byte
	tokens  [][]byte
	fields  []fieldText

	// reuse: entries alias scratch and entry (NewASCIIScanner).
	reuse bool
	// appendTo: the fast path appends to dst instead (ParseLineAppend).
	appendTo bool
	dst      []byte
	noFast   bool // tests: the general parser only
	entry    Entry
	fieldBuf [3]Field
}

type fieldText struct {
	text    []byte
	present bool
}

// NewASCIIReader returns a reader for the ASCII list in r. opts.Order is the
// order for rebuilt lengths (default little-endian); opts.DigestSize, if not
// 0, is the required width of the template digest column (otherwise the
// first line sets it).
func NewASCIIReader(r io.Reader, opts ReaderOptions) *ASCIIReader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, readerBufSize)
	}
	o := opts.Order
	if o == nil {
		o = binary.LittleEndian
	}
	return &ASCIIReader{br: br, opts: opts, order: o, dsize: opts.DigestSize}
}

// Offset returns the number of lines read so far (the line number of the
// last entry returned).
func (r *ASCIIReader) Offset() int64 { return r.line }

// ByteOrder returns the order used for rebuilt template data.
func (r *ASCIIReader) ByteOrder() binary.ByteOrder { return r.order }

// DigestSize returns the template digest width (0 until the first line).
func (r *ASCIIReader) DigestSize() int { return r.dsize }

// Lenient returns how many lines were accepted although the kernel would not
// print them that way: missing trailing empty fields, a PCR not formatted
// "%2d", upper-case hex. Such lines do not re-encode byte for byte.
func (r *ASCIIReader) Lenient() int { return r.lenient }

// MissingFinalNewline reports whether the last line had no '\n'.
func (r *ASCIIReader) MissingFinalNewline() bool { return r.noFinal }

// All iterates over the remaining entries, like Reader.All.
func (r *ASCIIReader) All() iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
		for {
			e, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

func (r *ASCIIReader) lineErr(field string, err error) error {
	return &FormatError{Offset: r.line, Entry: r.n, Field: field, Err: err, line: true}
}

// readLine returns the next line without its '\n'.
func (r *ASCIIReader) readLine() ([]byte, error) {
	r.lineBuf = r.lineBuf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.lineBuf)+len(chunk) > MaxASCIILineLen {
			r.line++
			return nil, r.lineErr("line", fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, MaxASCIILineLen))
		}
		if err == bufio.ErrBufferFull {
			r.lineBuf = append(r.lineBuf, chunk...)
			continue
		}
		if err == nil {
			if len(r.lineBuf) == 0 {
				return chunk[:len(chunk)-1], nil // no copy
			}
			r.lineBuf = append(r.lineBuf, chunk[:len(chunk)-1]...)
			return r.lineBuf, nil
		}
		if err == io.EOF {
			r.lineBuf = append(r.lineBuf, chunk...)
			if len(r.lineBuf) == 0 {
				return nil, io.EOF
			}
			r.noFinal = true
			return r.lineBuf, nil
		}
		return nil, fmt.Errorf("ima: line %d: %w", r.line+1, err)
	}
}

// Next returns the next entry; io.EOF at the end.
func (r *ASCIIReader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	line, err := r.readLine()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.line++
	e, err := r.parseLine(line)
	if err != nil {
		r.err = err
		return nil, err
	}
	r.n++
	return e, nil
}

func isHexLower(b []byte) (ok, upper bool) {
	if len(b)%2 != 0 {
		return false, false
	}
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			upper = true
		default:
			return false, false
		}
	}
	return true, upper
}

// ParseASCIILine parses one line (without '\n') of an ASCII list; see
// ASCIIReader. Lengths in the rebuilt data use order (nil: little-endian).
func ParseASCIILine(line []byte, order binary.ByteOrder) (*Entry, error) {
	r := NewASCIIReader(bytes.NewReader(nil), ReaderOptions{Order: order})
	r.line = 1
	return r.parseLine(line)
}

func (r *ASCIIReader) parseLine(line []byte) (*Entry, error) {
	if e, ok := r.parseFast(line); ok {
		return e, nil
	}
	canonical := true
	// PCR, "%2d".
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	j := i
	for j < len(line) && line[j] >= '0' && line[j] <= '9' {
		j++
	}
	if j == i || j-i > 2 {
		return nil, r.lineErr("pcr", malformed("want a decimal PCR index 0..%d", MaxPCRIndex))
	}
	pcrIdx, _ := strconv.Atoi(string(line[i:j]))
	if pcrIdx > MaxPCRIndex {
		return nil, r.lineErr("pcr", malformed("pcr index %d exceeds %d", pcrIdx, MaxPCRIndex))
	}
	// "%2d": " 8" or "10".
	if j != 2 || (pcrIdx < 10) != (i == 1) {
		canonical = false
	}
	if j >= len(line) || line[j] != ' ' {
		return nil, r.lineErr("pcr", malformed("want a space after the PCR index"))
	}
	rest := line[j+1:]
	// Template digest.
	k := bytes.IndexByte(rest, ' ')
	if k < 0 {
		return nil, r.lineErr("template digest", malformed("want '<pcr> <digest> <template> ...'"))
	}
	dhex := rest[:k]
	ok, upper := isHexLower(dhex)
	if !ok || len(dhex) == 0 || len(dhex)/2 > MaxDigestSize {
		return nil, r.lineErr("template digest", malformed("%q is not a hex digest of at most %d bytes", truncate(dhex), MaxDigestSize))
	}
	if upper {
		canonical = false
	}
	if r.dsize == 0 {
		r.dsize = len(dhex) / 2
	} else if len(dhex)/2 != r.dsize {
		return nil, r.lineErr("template digest", malformed("digest of %d bytes, want %d", len(dhex)/2, r.dsize))
	}
	rest = rest[k+1:]
	// Template name.
	k = bytes.IndexByte(rest, ' ')
	var name []byte
	if k < 0 {
		name, rest = rest, nil
	} else {
		name, rest = rest[:k], rest[k:]
	}
	if len(name) == 0 || len(name) > MaxTemplateNameLen {
		return nil, r.lineErr("template name", malformed("template name of %d bytes, want 1..%d", len(name), MaxTemplateNameLen))
	}
	t, err := r.tc.lookup(name)
	if err != nil {
		return nil, r.lineErr("template name", err)
	}
	// Fields: each is preceded by exactly one space.
	r.tokens = r.tokens[:0]
	if len(rest) > 0 {
		rest = rest[1:]
		for {
			k := bytes.IndexByte(rest, ' ')
			if k < 0 {
				r.tokens = append(r.tokens, rest)
				break
			}
			r.tokens = append(r.tokens, rest[:k])
			rest = rest[k+1:]
		}
	}
	full, err := r.assign(t)
	if err != nil {
		return nil, err
	}
	if !full {
		canonical = false
	}
	// Rebuild the template data.
	D := len(dhex) / 2
	buf, err := r.rebuild(t, D)
	if err != nil {
		return nil, err
	}
	hex.Decode(buf[:D], dhex) // validated above (isHexLower)
	for i, f := range r.fields {
		if hasUpperHex(t.Fields[i], f.text) {
			canonical = false
		}
	}
	if !canonical {
		r.lenient++
	}
	e, fields := newEntry(len(t.Fields))
	e.PCR = uint32(pcrIdx)
	e.Digest = buf[:D:D]
	e.Template = t.Name
	e.Data = buf[D:]
	e.Order = r.order
	e.tmpl = t
	if t.IsLegacy() {
		dl := len(r.fields[0].text) / 2
		fields[0] = Field{ID: FieldD, Data: e.Data[:dl:dl]}
		fields[1] = Field{ID: FieldN, Data: e.Data[dl:]}
	} else if err := splitFields(e.Data, t, r.order, fields); err != nil {
		return nil, r.lineErr("template data", err) // cannot happen: we built it
	}
	e.Fields = fields
	return e, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func isStringField(id string) bool {
	return id == FieldN || id == FieldNNG || id == FieldXattrNames
}

// tokenValid reports whether tok can be the printed form of field id.
func tokenValid(id string, tok []byte) bool {
	switch id {
	case FieldN, FieldNNG, FieldXattrNames:
		return bytes.IndexByte(tok, 0) < 0
	case FieldDNG, FieldDNGv2, FieldDModsig:
		if len(tok) == 0 {
			return true
		}
		c := bytes.LastIndexByte(tok, ':')
		if c < 0 || bytes.IndexByte(tok[:c], 0) >= 0 {
			return false
		}
		ok, _ := isHexLower(tok[c+1:])
		return ok
	case FieldIUID, FieldIGID, FieldIMode:
		if len(tok) == 0 {
			return true
		}
		_, err := strconv.ParseUint(string(tok), 10, 64)
		return err == nil && tok[0] != '+' && (tok[0] != '0' || len(tok) == 1)
	default: // d and hex blobs
		ok, _ := isHexLower(tok)
		return ok
	}
}

// assign maps r.tokens to t's fields in r.fields (see ASCIIReader). It
// reports whether every field was present.
func (r *ASCIIReader) assign(t *Template) (bool, error) {
	F := len(t.Fields)
	T := r.tokens
	r.fields = r.fields[:0]
	for range F {
		r.fields = append(r.fields, fieldText{})
	}
	s := -1
	for i, id := range t.Fields {
		if isStringField(id) {
			s = i
			break
		}
	}
	if s < 0 {
		if len(T) > F {
			return false, r.lineErr("fields", malformed("%d fields, template %s has %d", len(T), t.Name, F))
		}
		for i, tok := range T {
			if !tokenValid(t.Fields[i], tok) {
				return false, r.lineErr(t.Fields[i], malformed("%q is not a valid %s field", truncate(tok), t.Fields[i]))
			}
			r.fields[i] = fieldText{tok, true}
		}
		return len(T) == F, nil
	}
	if len(T) <= s {
		return false, r.lineErr("fields", malformed("%d fields, template %s has %d", len(T), t.Name, F))
	}
	for i := range s {
		if !tokenValid(t.Fields[i], T[i]) {
			return false, r.lineErr(t.Fields[i], malformed("%q is not a valid %s field", truncate(T[i]), t.Fields[i]))
		}
	}
	// k = number of fields after the string field that are present.
	for k := min(F-1-s, len(T)-s-1); k >= 0; k-- {
		ok := true
		for j := 1; j <= k; j++ {
			if !tokenValid(t.Fields[s+j], T[len(T)-k-1+j]) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		mid := T[s : len(T)-k]
		str := mid[0]
		if len(mid) > 1 {
			// Rejoin with the single spaces that separated the tokens;
			// they are contiguous in the line.
			end := mid[len(mid)-1]
			str = str[:cap(str)-cap(end)+len(end)]
		}
		if !tokenValid(t.Fields[s], str) {
			return false, r.lineErr(t.Fields[s], malformed("string with a NUL byte"))
		}
		for i := range s {
			r.fields[i] = fieldText{T[i], true}
		}
		r.fields[s] = fieldText{str, true}
		for j := 1; j <= k; j++ {
			r.fields[s+j] = fieldText{T[len(T)-k-1+j], true}
		}
		// A second string field after s: rejoining is only done for s.
		return k == F-1-s, nil
	}
	return false, r.lineErr("fields", malformed("fields after %s do not parse", t.Fields[s]))
}

// fieldDataLen returns the size of the rebuilt field data for a token.
func fieldDataLen(id string, tok []byte, legacy bool) int {
	switch id {
	case FieldN, FieldNNG:
		if legacy {
			return len(tok)
		}
		return len(tok) + 1
	case FieldXattrNames:
		if len(tok) == 0 {
			return 0
		}
		return len(tok) + 1
	case FieldDNG, FieldDNGv2, FieldDModsig:
		if len(tok) == 0 {
			return 0
		}
		c := bytes.LastIndexByte(tok, ':')
		return c + 2 + (len(tok)-c-1)/2
	case FieldIUID, FieldIGID, FieldIMode:
		if len(tok) == 0 {
			return 0
		}
		v, _ := strconv.ParseUint(string(tok), 10, 64)
		switch {
		case id == FieldIMode && v <= 0xffff:
			return 2
		case v <= 0xffffffff:
			return 4
		}
		return 8
	default:
		return len(tok) / 2
	}
}

// rebuild writes [digest space D][template data] for the assigned fields
// into one new allocation (ima-spec.md §3.3 encodings, lengths in r.order).
func (r *ASCIIReader) rebuild(t *Template, D int) ([]byte, error) {
	legacy := t.IsLegacy()
	total := D
	for i, f := range r.fields {
		n := fieldDataLen(t.Fields[i], f.text, legacy)
		if !legacy {
			total += 4
		}
		total += n
	}
	if total-D > MaxTemplateDataLen {
		return nil, r.lineErr("template data", fmt.Errorf("%w: %d bytes exceed %d", ErrTooLarge, total-D, MaxTemplateDataLen))
	}
	buf := make([]byte, D, total)
	o := r.order
	for i, f := range r.fields {
		id := t.Fields[i]
		n := fieldDataLen(id, f.text, legacy)
		if !legacy {
			buf = appendU32(o, buf, uint32(n))
		}
		tok := f.text
		switch id {
		case FieldN, FieldNNG, FieldXattrNames:
			buf = append(buf, tok...)
			if n > len(tok) {
				buf = append(buf, 0)
			}
		case FieldDNG, FieldDNGv2, FieldDModsig:
			if len(tok) > 0 {
				c := bytes.LastIndexByte(tok, ':')
				buf = append(buf, tok[:c+1]...)
				buf = append(buf, 0)
				buf = hexAppend(buf, tok[c+1:])
			}
		case FieldIUID, FieldIGID, FieldIMode:
			if len(tok) > 0 {
				v, _ := strconv.ParseUint(string(tok), 10, 64)
				switch n {
				case 2:
					buf = appendU16(o, buf, uint16(v))
				case 4:
					buf = appendU32(o, buf, uint32(v))
				default:
					buf = appendU64(o, buf, v)
				}
			}
		default:
			buf = hexAppend(buf, tok)
		}
	}
	if legacy && len(r.fields[0].text) != 40 {
		return nil, r.lineErr(FieldD, malformed("legacy d field of %d bytes, want 20", len(r.fields[0].text)/2))
	}
	if legacy && len(r.fields[1].text) > MaxEventNameLen {
		return nil, r.lineErr(FieldN, fmt.Errorf("%w: name of %d bytes exceeds %d", ErrTooLarge, len(r.fields[1].text), MaxEventNameLen))
	}
	return buf, nil
}

// hexAppend appends the bytes of validated hex text h.
func hexAppend(dst, h []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, len(h)/2)...)
	hex.Decode(dst[n:], h)
	return dst
}

func appendU16(o binary.ByteOrder, b []byte, v uint16) []byte {
	if a, ok := o.(binary.AppendByteOrder); ok {
		return a.AppendUint16(b, v)
	}
	var t [2]byte
	o.PutUint16(t[:], v)
	return append(b, t[:]...)
}

func appendU32(o binary.ByteOrder, b []byte, v uint32) []byte {
	if a, ok := o.(binary.AppendByteOrder); ok {
		return a.AppendUint32(b, v)
	}
	var t [4]byte
	o.PutUint32(t[:], v)
	return append(b, t[:]...)
}

func appendU64(o binary.ByteOrder, b []byte, v uint64) []byte {
	if a, ok := o.(binary.AppendByteOrder); ok {
		return a.AppendUint64(b, v)
	}
	var t [8]byte
	o.PutUint64(t[:], v)
	return append(b, t[:]...)
}

// hasUpperHex reports whether the hex part of a field's text uses upper-case
// digits, which the kernel never prints.
func hasUpperHex(id string, tok []byte) bool {
	switch id {
	case FieldN, FieldNNG, FieldXattrNames, FieldIUID, FieldIGID, FieldIMode:
		return false
	case FieldDNG, FieldDNGv2, FieldDModsig:
		tok = tok[bytes.LastIndexByte(tok, ':')+1:]
	}
	return bytes.ContainsAny(tok, "ABCDEF")
}
