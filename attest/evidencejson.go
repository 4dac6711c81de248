package attest

import (
	"strconv"

	"github.com/imago-ima/imago/internal/plainjson"
	"github.com/imago-ima/imago/pcr"
)

// Evidence is the largest message of every round, both ways: encoding/json's
// reflection on it costs a verifier about as much as checking the quote's
// signature. decodeEvidenceDirect and AppendJSON handle the plain form
// attesters write without it; the general decoder remains the reference
// (FuzzEvidenceDirect holds the two to the same values and bytes).

// decodeEvidenceDirect decodes evidence in the plain form: one object with
// each of Evidence's keys at most once and spelt as its tag, strings
// without escapes, base64 of the standard alphabet with padding, a
// decimal offset, PCRs in their plain form (parsePlainPCRs), JSON white
// space. ok is false for anything else, well-formed or not: the general
// decoder then decides, and says why.
func decodeEvidenceDirect(data []byte) (*Evidence, bool) {
	r := plainjson.NewReader(data)
	e := new(Evidence)
	ok := r.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "token":
			e.Token, ok = r.ASCII()
		case "nonce":
			e.Nonce, ok = r.Base64()
		case "quote":
			ok = r.Object(func(key []byte) bool {
				var ok bool
				switch string(key) {
				case "attest":
					e.Quote.Attest, ok = r.Base64()
				case "signature":
					e.Quote.Signature, ok = r.Base64()
				}
				return ok
			})
		case "pcrs":
			var s pcr.Set
			s, ok = readPCRs(r)
			e.PCRs = PCRValues(s)
		case "offset":
			e.Offset, ok = r.Uint(64)
		case "list":
			e.List, ok = r.Base64()
		case "event_log":
			e.EventLog, ok = r.Base64()
		case "ak_public":
			e.AKPublic, ok = r.Base64()
		}
		return ok
	})
	if !ok || !r.End() {
		return nil, false
	}
	return e, true
}

// AppendJSON appends the evidence's JSON, the bytes json.Marshal writes.
func (e *Evidence) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.Token != "" {
		b = plainjson.AppendString(append(b, `"token":`...), e.Token)
		b = append(b, ',')
	}
	if len(e.Nonce) > 0 {
		b = plainjson.AppendBytes(append(b, `"nonce":`...), e.Nonce)
		b = append(b, ',')
	}
	b = plainjson.AppendBytes(append(b, `"quote":{"attest":`...), e.Quote.Attest)
	b = plainjson.AppendBytes(append(b, `,"signature":`...), e.Quote.Signature)
	b = pcr.Set(e.PCRs).AppendJSON(append(b, `},"pcrs":`...))
	b = strconv.AppendUint(append(b, `,"offset":`...), e.Offset, 10)
	b = plainjson.AppendBytes(append(b, `,"list":`...), e.List)
	if len(e.EventLog) > 0 {
		b = plainjson.AppendBytes(append(b, `,"event_log":`...), e.EventLog)
	}
	if len(e.AKPublic) > 0 {
		b = plainjson.AppendBytes(append(b, `,"ak_public":`...), e.AKPublic)
	}
	return append(b, '}')
}
