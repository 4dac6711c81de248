package attest

import (
	"encoding/hex"

	"github.com/imago-ima/imago/internal/plainjson"
	"github.com/imago-ima/imago/pcr"
)

// PCRValues are the quoted PCR values in evidence: pcr.Set, with the same
// JSON form ({"sha256": {"10": "<hex>"}}), decoded by a fast path for the
// plain form attesters write (every round carries one, and the general
// decoder costs as much as verifying the quote's signature). Anything else
// (escapes, a "pcrs" wrapper, unknown bank names) goes to pcr.ParseJSON,
// so both accept the same inputs.
type PCRValues pcr.Set

// MarshalJSON writes pcr.Set's form.
func (v PCRValues) MarshalJSON() ([]byte, error) { return pcr.Set(v).MarshalJSON() }

// UnmarshalJSON reads pcr.Set's form.
func (v *PCRValues) UnmarshalJSON(b []byte) error {
	s, ok := parsePlainPCRs(b)
	if !ok {
		var err error
		if s, err = pcr.ParseJSON(b); err != nil {
			return err
		}
	}
	*v = PCRValues(s)
	return nil
}

// parsePlainPCRs parses {"bank": {"index": "hex", ...}, ...} with known
// bank names, decimal indexes up to pcr.MaxIndex and hex digests of the
// bank's size, and JSON white space; ok is false for anything else.
func parsePlainPCRs(b []byte) (s pcr.Set, ok bool) {
	r := plainjson.NewReader(b)
	s, ok = readPCRs(r)
	return s, ok && r.End()
}

// readPCRs reads the plain form of a PCR set (parsePlainPCRs) at r.
func readPCRs(r *plainjson.Reader) (pcr.Set, bool) {
	s := make(pcr.Set)
	ok := r.Object(func(name []byte) bool {
		bank, err := pcr.ParseBank(string(name))
		if err != nil || !bank.Known() {
			return false
		}
		return r.Object(func(key []byte) bool {
			if len(key) == 0 || len(key) > 2 || (len(key) == 2 && key[0] == '0') {
				return false
			}
			idx := 0
			for _, c := range key {
				if c < '0' || c > '9' {
					return false
				}
				idx = idx*10 + int(c-'0')
			}
			val, ok := r.Str()
			if !ok || idx > pcr.MaxIndex || len(val) != 2*bank.Size() {
				return false
			}
			d := make([]byte, bank.Size())
			if _, err := hex.Decode(d, val); err != nil {
				return false
			}
			s.Put(bank, idx, d)
			return true
		})
	})
	return s, ok && len(s) > 0
}
