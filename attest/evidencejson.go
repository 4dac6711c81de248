package attest

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/imago-ima/imago/pcr"
)

// Evidence is the largest message of every round, both ways: encoding/json's
// reflection on it costs a verifier about as much as checking the quote's
// signature. decodeEvidenceDirect and AppendJSON handle the plain form
// attesters write without it; the general decoder remains the reference
// (FuzzEvidenceDirect holds the two to the same values and bytes).

// evidence keys, as bits of a set.
const (
	keyToken = 1 << iota
	keyNonce
	keyQuote
	keyPCRs
	keyOffset
	keyList
	keyEventLog
	keyAKPublic
)

// decodeEvidenceDirect decodes evidence in the plain form: one object with
// each of Evidence's keys at most once and spelt as its tag, strings
// without escapes, base64 of the standard alphabet with padding, a
// decimal offset, PCRs in their plain form (parsePlainPCRs), JSON white
// space. ok is false for anything else, well-formed or not: the general
// decoder then decides, and says why.
func decodeEvidenceDirect(data []byte) (e *Evidence, ok bool) {
	p := plain{b: data}
	e = new(Evidence)
	if !p.eat('{') {
		return nil, false
	}
	seen := 0
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return nil, false
		}
		var k int
		switch string(key) {
		case "token":
			k = keyToken
			if e.Token, ok = p.ascii(); !ok {
				return nil, false
			}
		case "nonce":
			k = keyNonce
			e.Nonce, ok = p.base64()
		case "quote":
			k = keyQuote
			ok = p.quote(&e.Quote)
		case "pcrs":
			k = keyPCRs
			var s pcr.Set
			s, ok = p.pcrSet()
			e.PCRs = PCRValues(s)
		case "offset":
			k = keyOffset
			e.Offset, ok = p.uint()
		case "list":
			k = keyList
			e.List, ok = p.base64()
		case "event_log":
			k = keyEventLog
			e.EventLog, ok = p.base64()
		case "ak_public":
			k = keyAKPublic
			e.AKPublic, ok = p.base64()
		}
		if !ok || k == 0 || seen&k != 0 {
			return nil, false
		}
		seen |= k
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return nil, false
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, false
	}
	return e, true
}

// quote reads {"attest": "...", "signature": "..."} (either or both keys,
// each at most once).
func (p *plain) quote(q *Quote) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	var haveAttest, haveSig bool
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return false
		}
		switch string(key) {
		case "attest":
			if haveAttest {
				return false
			}
			haveAttest = true
			q.Attest, ok = p.base64()
		case "signature":
			if haveSig {
				return false
			}
			haveSig = true
			q.Signature, ok = p.base64()
		default:
			return false
		}
		if !ok {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// ascii reads a string of printable ASCII without escapes.
func (p *plain) ascii() (string, bool) {
	s, ok := p.str()
	if !ok {
		return "", false
	}
	for _, c := range s {
		if c >= 0x7f {
			return "", false
		}
	}
	return string(s), true
}

// base64 reads a string of standard base64 (encoding/json's form of
// []byte): "" is an empty, non-nil slice, as encoding/json makes it.
func (p *plain) base64() ([]byte, bool) {
	s, ok := p.str()
	if !ok {
		return nil, false
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return nil, false
	}
	return b[:n], true
}

// uint reads a JSON number that is a decimal uint64.
func (p *plain) uint() (uint64, bool) {
	p.ws()
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	d := p.b[start:p.i]
	if len(d) == 0 || (len(d) > 1 && d[0] == '0') {
		return 0, false
	}
	// A fraction or exponent is not a uint64 to encoding/json either, but
	// let it say so.
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseUint(string(d), 10, 64)
	return v, err == nil
}

// AppendJSON appends the evidence's JSON, the bytes json.Marshal writes.
func (e *Evidence) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.Token != "" {
		b = appendString(append(b, `"token":`...), e.Token)
		b = append(b, ',')
	}
	if len(e.Nonce) > 0 {
		b = appendBytes(append(b, `"nonce":`...), e.Nonce)
		b = append(b, ',')
	}
	b = appendBytes(append(b, `"quote":{"attest":`...), e.Quote.Attest)
	b = appendBytes(append(b, `,"signature":`...), e.Quote.Signature)
	b = pcr.Set(e.PCRs).AppendJSON(append(b, `},"pcrs":`...))
	b = strconv.AppendUint(append(b, `,"offset":`...), e.Offset, 10)
	b = appendBytes(append(b, `,"list":`...), e.List)
	if len(e.EventLog) > 0 {
		b = appendBytes(append(b, `,"event_log":`...), e.EventLog)
	}
	if len(e.AKPublic) > 0 {
		b = appendBytes(append(b, `,"ak_public":`...), e.AKPublic)
	}
	return append(b, '}')
}

// appendBytes appends a []byte as encoding/json does: base64, null for
// nil.
func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendString appends a JSON string as encoding/json does: raw when
// nothing in it needs escaping, else through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
