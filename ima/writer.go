package ima

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
)

// AppendBinary appends e's binary record (ima-spec.md §2.3) to dst, with the
// record header integers (pcr, name_len, data_len; n_len for "ima") in
// order. Data is written verbatim: its field lengths keep the order it was
// built with (Entry.Order), which must be the same as order for a list a
// kernel could have written; Reorder converts an entry.
//
// For the legacy "ima" template Data is d (20 bytes) || name, and the record
// is d || u32 n_len || name, with no data_len.
func AppendBinary(dst []byte, e *Entry, order binary.ByteOrder) ([]byte, error) {
	if order == nil {
		order = binary.LittleEndian
	}
	if len(e.Template) == 0 || len(e.Template) > MaxTemplateNameLen {
		return dst, fmt.Errorf("ima: template name of %d bytes, want 1..%d", len(e.Template), MaxTemplateNameLen)
	}
	if len(e.Digest) > MaxDigestSize {
		return dst, fmt.Errorf("ima: template digest of %d bytes exceeds %d", len(e.Digest), MaxDigestSize)
	}
	dst = appendU32(order, dst, e.PCR)
	dst = append(dst, e.Digest...)
	dst = appendU32(order, dst, uint32(len(e.Template)))
	dst = append(dst, e.Template...)
	if e.Template == TemplateIMA {
		if len(e.Data) < 20 || len(e.Data)-20 > MaxEventNameLen {
			return dst, fmt.Errorf("ima: legacy ima entry data of %d bytes, want 20..%d", len(e.Data), 20+MaxEventNameLen)
		}
		dst = append(dst, e.Data[:20]...)
		dst = appendU32(order, dst, uint32(len(e.Data)-20))
		return append(dst, e.Data[20:]...), nil
	}
	if len(e.Data) > MaxTemplateDataLen {
		return dst, fmt.Errorf("ima: template data of %d bytes exceeds %d", len(e.Data), MaxTemplateDataLen)
	}
	dst = appendU32(order, dst, uint32(len(e.Data)))
	return append(dst, e.Data...), nil
}

// AppendASCII appends e's line of ascii_runtime_measurements (ima-spec.md
// §2.4), with its '\n', to dst: "%2d" PCR, hex template digest, template
// name, then one space and the text of each field. Field integers are read
// in Entry.Order.
func AppendASCII(dst []byte, e *Entry) []byte {
	if e.PCR < 10 {
		dst = append(dst, ' ')
	}
	dst = strconv.AppendUint(dst, uint64(e.PCR), 10)
	dst = append(dst, ' ')
	dst = hex.AppendEncode(dst, e.Digest)
	dst = append(dst, ' ')
	dst = append(dst, e.Template...)
	order := e.byteOrder()
	for _, f := range e.Fields {
		dst = append(dst, ' ')
		dst = appendFieldText(dst, f.ID, f.Data, order)
	}
	return append(dst, '\n')
}

// appendFieldText appends the kernel's ASCII rendering of one field
// (ima_show_template_data_ascii; ima-spec.md §2.4). An empty field prints
// nothing.
func appendFieldText(dst []byte, id string, data []byte, order binary.ByteOrder) []byte {
	if len(data) == 0 {
		return dst
	}
	switch id {
	case FieldDNG, FieldDNGv2, FieldDModsig:
		// The prefix up to its NUL, then the hex of what follows the last
		// ':' and the NUL after it.
		s := data
		if z := bytes.IndexByte(data, 0); z >= 0 {
			s = data[:z]
		}
		c := bytes.LastIndexByte(s, ':')
		if c < 0 {
			return hex.AppendEncode(dst, data)
		}
		dst = append(dst, s...)
		if c+2 <= len(data) {
			dst = hex.AppendEncode(dst, data[c+2:])
		}
		return dst
	case FieldN, FieldNNG, FieldXattrNames:
		if z := bytes.IndexByte(data, 0); z >= 0 {
			data = data[:z]
		}
		return append(dst, data...)
	case FieldIUID, FieldIGID, FieldIMode:
		if v, ok := decodeUint(data, order); ok {
			return strconv.AppendUint(dst, v, 10)
		}
		return dst
	}
	return hex.AppendEncode(dst, data)
}

// decodeUint reads a u8/u16/u32/u64 by length (DATA_FMT_UINT).
func decodeUint(b []byte, order binary.ByteOrder) (uint64, bool) {
	switch len(b) {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(order.Uint16(b)), true
	case 4:
		return uint64(order.Uint32(b)), true
	case 8:
		return order.Uint64(b), true
	}
	return 0, false
}

func (e *Entry) byteOrder() binary.ByteOrder {
	if e.Order != nil {
		return e.Order
	}
	return binary.LittleEndian
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Format is FormatBinary or FormatASCII.
	Format Format
	// Order is the byte order of binary record headers (nil:
	// little-endian). It should equal the Order of the entries written.
	Order binary.ByteOrder
}

// Writer writes entries as a binary or ASCII list. It buffers nothing beyond
// one record: each Write is one w.Write call.
type Writer struct {
	w    io.Writer
	opts WriterOptions
	buf  []byte
	err  error
	n    int64
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer, opts WriterOptions) *Writer {
	if opts.Order == nil {
		opts.Order = binary.LittleEndian
	}
	return &Writer{w: w, opts: opts}
}

// Write writes one entry. Errors are sticky.
func (w *Writer) Write(e *Entry) error {
	if w.err != nil {
		return w.err
	}
	var err error
	if w.opts.Format == FormatASCII {
		w.buf = AppendASCII(w.buf[:0], e)
	} else {
		w.buf, err = AppendBinary(w.buf[:0], e, w.opts.Order)
		if err != nil {
			w.err = err
			return err
		}
	}
	n, err := w.w.Write(w.buf)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("ima: write: %w", err)
	}
	return w.err
}

// Offset returns the number of bytes written.
func (w *Writer) Offset() int64 { return w.n }
