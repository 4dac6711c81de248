package adopt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// RecordName is the event name of the entry with which the agent's own list
// records that a TPM appeared and adoption of the kernel's list began. The
// entry is an ima-buf entry (d-ng|n-ng|buf, as the kernel records critical
// data) whose buf is Record.Format's text.
const RecordName = "kernel_list_adopted"

// maxRecord bounds a record's text.
const maxRecord = 4096

// Record is what adoption reports when it starts on a TPM that holds none of
// the kernel's list: how many entries the kernel had listed when the TPM
// appeared (entries 1..Listed predate the TPM and are only as trustworthy as
// the system was until then), the PCR the kernel's list extends, the TPM's
// banks, and the boot aggregate computed as the kernel would have from the
// TPM's PCR 0-9 at that moment.
type Record struct {
	Listed    int
	PCR       int
	Banks     []pcr.Bank
	Aggregate string // "<alg>:<hex>"; empty if it could not be computed
}

// Format returns the record's text, one line of space-separated key=value
// pairs in this order:
//
//	listed=<decimal> pcr=<decimal> banks=<name>[,<name>...] [aggregate=<alg>:<hex>]
//
// Readers ignore keys they do not know (ParseRecord), so later versions may
// append keys.
func (r Record) Format() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "listed=%d pcr=%d banks=", r.Listed, r.PCR)
	for i, bk := range r.Banks {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(bk.String())
	}
	if r.Aggregate != "" {
		b.WriteString(" aggregate=")
		b.WriteString(r.Aggregate)
	}
	return []byte(b.String())
}

// ParseRecord parses Format's text strictly: listed, pcr and banks must be
// present once each with canonical decimals and known bank names; unknown
// keys are skipped.
func ParseRecord(text []byte) (Record, error) {
	var r Record
	if len(text) > maxRecord {
		return r, fmt.Errorf("adopt: record of %d bytes exceeds %d", len(text), maxRecord)
	}
	if bytes.ContainsAny(text, "\n\x00") {
		return r, fmt.Errorf("adopt: record holds a newline or NUL")
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(string(text), " ") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return Record{}, fmt.Errorf("adopt: record: %q is not key=value", kv)
		}
		if seen[k] {
			return Record{}, fmt.Errorf("adopt: record: %s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "listed":
			r.Listed, err = parseDecimal(v)
		case "pcr":
			r.PCR, err = parseDecimal(v)
			if err == nil && r.PCR > pcr.MaxIndex {
				err = fmt.Errorf("PCR %d exceeds %d", r.PCR, pcr.MaxIndex)
			}
		case "banks":
			for _, name := range strings.Split(v, ",") {
				b, berr := pcr.ParseBank(name)
				if berr != nil {
					err = berr
					break
				}
				r.Banks = append(r.Banks, b)
			}
		case "aggregate":
			alg, hex, ok := strings.Cut(v, ":")
			if !ok || alg == "" || hex == "" {
				err = fmt.Errorf("want <alg>:<hex>, got %q", v)
			}
			r.Aggregate = v
		}
		if err != nil {
			return Record{}, fmt.Errorf("adopt: record: %s: %w", k, err)
		}
	}
	for _, k := range []string{"listed", "pcr", "banks"} {
		if !seen[k] {
			return Record{}, fmt.Errorf("adopt: record: no %s", k)
		}
	}
	return r, nil
}

// parseDecimal accepts a canonical non-negative decimal that fits an int32.
func parseDecimal(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("%q is not a canonical decimal", s)
	}
	return int(n), nil
}

// Entry returns the record as an adopter's own list carries it: an ima-buf
// entry on PCR pcrIndex named RecordName whose buf is Format's text and
// whose d-ng digest is alg's hash of it, as the kernel records critical
// data. order is the list's byte order.
func (r Record) Entry(alg ima.HashAlg, order binary.ByteOrder, pcrIndex uint32) (*ima.Entry, error) {
	h := alg.New()
	if h == nil {
		return nil, fmt.Errorf("adopt: record: hash %s cannot be computed", alg)
	}
	buf := r.Format()
	h.Write(buf)
	return ima.NewEntry(ima.TemplateIMABuf, order, pcrIndex, ima.DigestNG(alg, h.Sum(nil)), ima.NameNG(RecordName), ima.Buf(buf))
}

// RecordOf returns the record an entry carries: ok is false for an entry
// that is not a RecordName ima-buf entry; an error means it is one but its
// digest is not its buffer's or its text does not parse.
func RecordOf(e *ima.Entry) (r Record, ok bool, err error) {
	name, nerr := e.Name()
	buf, hasBuf := e.Field(ima.FieldBuf)
	if nerr != nil || name != RecordName || !hasBuf {
		return Record{}, false, nil
	}
	d, err := e.FileDigest()
	if err != nil {
		return Record{}, true, fmt.Errorf("adopt: record entry: %w", err)
	}
	h := d.Alg.New()
	if h == nil {
		return Record{}, true, fmt.Errorf("adopt: record entry: hash %s cannot be computed", d.Alg)
	}
	h.Write(buf)
	if !bytes.Equal(h.Sum(nil), d.Sum) {
		return Record{}, true, fmt.Errorf("adopt: record entry: digest %s is not its buffer's", d)
	}
	r, err = ParseRecord(buf)
	return r, true, err
}
