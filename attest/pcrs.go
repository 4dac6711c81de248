package attest

import (
	"encoding/hex"

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
	p := plain{b: b}
	s = make(pcr.Set)
	if !p.eat('{') {
		return nil, false
	}
	if p.eat('}') {
		return nil, false // no bank: pcr.ParseJSON says why
	}
	for {
		name, ok := p.str()
		if !ok {
			return nil, false
		}
		bank, err := pcr.ParseBank(string(name))
		if err != nil || !bank.Known() || !p.eat(':') || !p.eat('{') {
			return nil, false
		}
		if !p.eat('}') {
			for {
				key, ok := p.str()
				if !ok || len(key) == 0 || len(key) > 2 || !p.eat(':') {
					return nil, false
				}
				idx := 0
				for _, c := range key {
					if c < '0' || c > '9' {
						return nil, false
					}
					idx = idx*10 + int(c-'0')
				}
				if idx > pcr.MaxIndex || (len(key) == 2 && key[0] == '0') {
					return nil, false
				}
				val, ok := p.str()
				if !ok || len(val) != 2*bank.Size() {
					return nil, false
				}
				d := make([]byte, bank.Size())
				if _, err := hex.Decode(d, val); err != nil {
					return nil, false
				}
				s.Put(bank, idx, d)
				if p.eat('}') {
					break
				}
				if !p.eat(',') {
					return nil, false
				}
			}
		}
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return nil, false
		}
	}
	p.ws()
	return s, p.i == len(p.b) && len(s) > 0
}

type plain struct {
	b []byte
	i int
}

func (p *plain) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *plain) eat(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string without escapes or control bytes.
func (p *plain) str() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}
