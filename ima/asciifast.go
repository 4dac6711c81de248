package ima

import (
	"bufio"
	"bytes"
	"io"
	"iter"

	"github.com/imago-ima/imago/internal/hexdec"
)

// fastShape is a built-in template whose ASCII line the fast path rebuilds:
// a d-ng or d-ngv2 digest, an n-ng name, and at most one trailing hex field
// (sig or buf).
func fastShape(t *Template) bool {
	if t.Custom || len(t.Fields) < 2 || len(t.Fields) > 3 {
		return false
	}
	if t.Fields[0] != FieldDNG && t.Fields[0] != FieldDNGv2 || t.Fields[1] != FieldNNG {
		return false
	}
	return len(t.Fields) == 2 || t.Fields[2] == FieldSig || t.Fields[2] == FieldBuf
}

// parseFast rebuilds the common lines (ima-ng, ima-sig, ima-ngv2,
// ima-sigv2, ima-buf as the kernel prints them: every field present, a name
// without spaces) in one pass, into r.scratch when r.reuse is set, onto
// r.dst with r.appendTo. It returns false, having changed nothing (but
// bytes of r.dst past its length), for any other line; the general parser
// then handles (or rejects) it.
func (r *ASCIIReader) parseFast(line []byte) (*Entry, bool) {
	// "NN <digest> <template> <fields>": the PCR in "%2d".
	if len(line) < 4 || r.noFast {
		return nil, false
	}
	i := 0
	if line[0] == ' ' {
		i = 1
	}
	var pcrIdx uint32
	switch {
	case i == 1 && isDigit(line[1]) && line[2] == ' ':
		pcrIdx = uint32(line[1] - '0')
		i = 3
	case i == 0 && isDigit(line[0]) && isDigit(line[1]) && line[2] == ' ' && line[0] != '0':
		pcrIdx = uint32(line[0]-'0')*10 + uint32(line[1]-'0')
		i = 3
	default:
		return nil, false
	}
	if pcrIdx > MaxPCRIndex {
		return nil, false
	}
	rest := line[i:]
	k := bytes.IndexByte(rest, ' ')
	if k <= 0 || k%2 != 0 || k/2 > MaxDigestSize || (r.dsize != 0 && k/2 != r.dsize) {
		return nil, false
	}
	dhex := rest[:k]
	rest = rest[k+1:]
	k = bytes.IndexByte(rest, ' ')
	if k <= 0 {
		return nil, false
	}
	t := builtinTemplate(rest[:k])
	if t == nil || !fastShape(t) {
		return nil, false
	}
	rest = rest[k+1:]
	// Tokens: digest, name[, hex].
	k = bytes.IndexByte(rest, ' ')
	if k < 0 {
		return nil, false
	}
	dtok := rest[:k]
	rest = rest[k+1:]
	var ntok, xtok []byte
	if len(t.Fields) == 2 {
		if bytes.IndexByte(rest, ' ') >= 0 || len(rest) == 0 {
			return nil, false // a name with spaces: the general parser rejoins it
		}
		ntok = rest
	} else {
		k = bytes.IndexByte(rest, ' ')
		if k <= 0 || bytes.IndexByte(rest[k+1:], ' ') >= 0 {
			return nil, false
		}
		ntok, xtok = rest[:k], rest[k+1:]
	}
	if bytes.IndexByte(ntok, 0) >= 0 {
		return nil, false
	}
	c := bytes.IndexByte(dtok, ':')
	if t.Fields[0] == FieldDNGv2 && c >= 0 {
		c2 := bytes.IndexByte(dtok[c+1:], ':')
		if c2 < 0 {
			return nil, false
		}
		c += 1 + c2
	}
	// (A ':' after c fails the hex decoding.)
	if c <= 0 || bytes.IndexByte(dtok[:c], 0) >= 0 {
		return nil, false
	}
	dlen := c + 2 + (len(dtok)-c-1)/2
	total := 4 + dlen + 4 + len(ntok) + 1
	if len(t.Fields) == 3 {
		total += 4 + len(xtok)/2
	}
	D := len(dhex) / 2
	if total > MaxTemplateDataLen {
		return nil, false
	}
	var buf []byte
	base := 0
	switch {
	case r.appendTo:
		buf, base = r.dst, len(r.dst)
	case r.reuse:
		if cap(r.scratch) < D+total {
			r.scratch = make([]byte, 0, D+total+256)
		}
		buf = r.scratch[:0]
	default:
		buf = make([]byte, 0, D+total)
	}
	// upper: an upper-case digit, which the kernel never prints.
	var ok, up, upper bool
	if buf, ok = hexdec.AppendLower(buf, dhex); !ok { // as the kernel prints it
		if buf, ok, upper = hexdec.Append(buf, dhex); !ok {
			return nil, false
		}
	}
	o := r.order
	buf = appendU32(o, buf, uint32(dlen))
	buf = append(buf, dtok[:c+1]...)
	buf = append(buf, 0)
	if buf, ok = hexdec.AppendLower(buf, dtok[c+1:]); !ok {
		if buf, ok, up = hexdec.Append(buf, dtok[c+1:]); !ok {
			return nil, false
		}
		upper = upper || up
	}
	buf = appendU32(o, buf, uint32(len(ntok)+1))
	buf = append(buf, ntok...)
	buf = append(buf, 0)
	if len(t.Fields) == 3 {
		buf = appendU32(o, buf, uint32(len(xtok)/2))
		if buf, ok, up = hexdec.Append(buf, xtok); !ok {
			return nil, false
		}
		upper = upper || up
	}
	if r.dsize == 0 {
		r.dsize = D
	}
	if upper {
		r.lenient++
	}
	var e *Entry
	var fields []Field
	if r.appendTo {
		r.dst = buf
	}
	if r.reuse {
		if !r.appendTo {
			r.scratch = buf
		}
		r.entry = Entry{}
		e, fields = &r.entry, r.fieldBuf[:len(t.Fields):len(t.Fields)]
	} else {
		e, fields = newEntry(len(t.Fields))
	}
	data := buf[base+D:]
	e.PCR = pcrIdx
	e.Digest = buf[base : base+D : base+D]
	e.Template = t.Name
	e.Data = data
	e.Order = o
	e.tmpl = t
	off := 4
	fields[0] = Field{ID: t.Fields[0], Data: data[off : off+dlen : off+dlen]}
	off += dlen + 4
	fields[1] = Field{ID: FieldNNG, Data: data[off : off+len(ntok)+1 : off+len(ntok)+1]}
	off += len(ntok) + 1
	if len(t.Fields) == 3 {
		off += 4
		fields[2] = Field{ID: t.Fields[2], Data: data[off:len(data):len(data)]}
	}
	e.Fields = fields
	return e, true
}

// ParseLineAppend is ParseLine for a caller that keeps the entry's bytes
// in a buffer of its own: for a line the fast path reads (the common
// lines, see parseFast), the template digest and then the template data
// are appended to dst, returned, and e.Digest and e.Data alias it, back to
// back; for any other line dst is returned as it was (its length; bytes
// past it may have changed) and the entry is ParseLine's. It saves a
// verifier that copies every entry into batches a copy of each.
func (r *ASCIIReader) ParseLineAppend(dst, line []byte) (*Entry, []byte, error) {
	r.appendTo, r.dst = true, dst
	e, err := r.ParseLine(line)
	out := r.dst
	r.appendTo, r.dst = false, nil
	if err != nil {
		return nil, dst, err
	}
	return e, out, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// NewASCIIScanner returns an ASCIIReader for hot paths such as replay and
// verification: like Scanner for binary lists, the *Entry that Next returns
// and every byte it points to are valid only until the next call, and the
// common lines are read without allocating.
func NewASCIIScanner(r io.Reader, opts ReaderOptions) *ASCIIReader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 4096 {
		br = bufio.NewReaderSize(r, scanBuffer)
	}
	a := NewASCIIReader(br, opts)
	a.reuse = true
	return a
}

// scanASCII is ScanList's ASCII branch.
func scanASCII(br *bufio.Reader, opts ReaderOptions) iter.Seq2[*Entry, error] {
	return NewASCIIScanner(br, opts).All()
}

// ParseLine parses one line of an ASCII list (without its '\n') with the
// reader's options, as Next would read it; from NewASCIIScanner the entry
// is valid until the next call. It lets a caller that splits lines itself
// parse them on several goroutines, one reader each.
func (r *ASCIIReader) ParseLine(line []byte) (*Entry, error) {
	r.line++
	e, err := r.parseLine(line)
	if err != nil {
		return nil, err
	}
	r.n++
	return e, nil
}
