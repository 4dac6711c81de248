package ima

// SplitFields returns the entry's fields: e.Fields when a reader set them,
// else Data split by the entry's template descriptor into dst (reused when
// it has room), without allocating otherwise. It is for entries from a
// Scanner, which does not split fields. The legacy "ima" template gives d
// and n (the name without padding).
func (e *Entry) SplitFields(dst []Field) ([]Field, error) {
	if e.Fields != nil {
		return e.Fields, nil
	}
	t, err := e.Descriptor()
	if err != nil {
		return nil, err
	}
	if t.IsLegacy() {
		if len(e.Data) < 20 {
			return nil, malformed("legacy ima template data of %d bytes", len(e.Data))
		}
		dst = append(dst[:0], Field{ID: FieldD, Data: e.Data[:20:20]}, Field{ID: FieldN, Data: e.Data[20:]})
		return dst, nil
	}
	if cap(dst) < len(t.Fields) {
		dst = make([]Field, len(t.Fields))
	}
	dst = dst[:len(t.Fields)]
	if err := splitFields(e.Data, t, e.byteOrder(), dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// AppendHashInput appends the bytes whose hash is the template digest
// (WriteHashInput: Data, or for the legacy "ima" template d || name
// zero-padded to 256 bytes) to dst.
func (e *Entry) AppendHashInput(dst []byte) []byte {
	dst = append(dst, e.Data...)
	if e.Template == TemplateIMA && len(e.Data) >= 20 {
		if name := e.Data[20:]; len(name) < 256 {
			dst = append(dst, zeros256[:256-len(name)]...)
		}
	}
	return dst
}
