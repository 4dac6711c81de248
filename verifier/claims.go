package verifier

import (
	"strconv"

	"github.com/imago-ima/imago/internal/plainjson"
	"github.com/imago-ima/imago/quote"
)

// A challenge token's claims are JSON, as json.Marshal writes them, so that
// replicas of other builds read them; appendJSON writes those bytes and
// parseClaims reads them without reflection (every round makes one token
// and opens one). FuzzClaims holds both to encoding/json.

// appendJSON appends the claims' JSON, json.Marshal's bytes.
func (c *challengeClaims) appendJSON(b []byte) []byte {
	b = plainjson.AppendString(append(b, `{"n":`...), c.Node)
	b = strconv.AppendUint(append(b, `,"r":`...), c.Round, 10)
	b = plainjson.AppendBytes(append(b, `,"c":`...), c.Nonce)
	b = c.Selection.AppendJSON(append(b, `,"s":`...))
	b = strconv.AppendUint(append(b, `,"o":`...), c.Offset, 10)
	if c.EventLog {
		b = append(b, `,"e":true`...)
	}
	b = strconv.AppendInt(append(b, `,"x":`...), c.Expires, 10)
	return append(b, '}')
}

// parseClaims reads claims in the form appendJSON writes (any key order,
// JSON white space); ok is false for anything else, which encoding/json
// then reads.
func parseClaims(b []byte) (*challengeClaims, bool) {
	r := plainjson.NewReader(b)
	c := new(challengeClaims)
	ok := r.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "n":
			c.Node, ok = r.ASCII()
		case "r":
			c.Round, ok = r.Uint(64)
		case "c":
			c.Nonce, ok = r.Base64()
		case "s":
			c.Selection, ok = quote.ReadSelectionJSON(r)
		case "o":
			c.Offset, ok = r.Uint(64)
		case "e":
			c.EventLog, ok = r.Bool()
		case "x":
			c.Expires, ok = r.Int(64)
		}
		return ok
	})
	if !ok || !r.End() {
		return nil, false
	}
	return c, true
}
