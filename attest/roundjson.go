package attest

import (
	"encoding/json"
	"strconv"

	"github.com/imago-ima/imago/internal/plainjson"
	"github.com/imago-ima/imago/quote"
)

// A round's answers, Challenge and Result, are written by the verifier and
// read by the attester once per round: AppendJSON writes json.Marshal's
// bytes and DecodeJSON reads the plain form without reflection, leaving
// every other form to encoding/json (FuzzRoundJSON holds them to it).

// AppendJSON appends the challenge's JSON, the bytes json.Marshal writes.
func (c *Challenge) AppendJSON(b []byte) []byte {
	b = plainjson.AppendString(append(b, `{"token":`...), c.Token)
	b = plainjson.AppendBytes(append(b, `,"nonce":`...), c.Nonce)
	b = c.Selection.AppendJSON(append(b, `,"selection":`...))
	b = strconv.AppendUint(append(b, `,"offset":`...), c.Offset, 10)
	b = strconv.AppendBool(append(b, `,"event_log":`...), c.EventLog)
	b = plainjson.AppendString(append(b, `,"expires":`...), c.Expires)
	return append(b, '}')
}

// DecodeJSON decodes a challenge into c, which must be the zero Challenge.
func (c *Challenge) DecodeJSON(b []byte) error {
	r := plainjson.NewReader(b)
	ok := r.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "token":
			c.Token, ok = r.ASCII()
		case "nonce":
			c.Nonce, ok = r.Base64()
		case "selection":
			c.Selection, ok = quote.ReadSelectionJSON(r)
		case "offset":
			c.Offset, ok = r.Uint(64)
		case "event_log":
			c.EventLog, ok = r.Bool()
		case "expires":
			c.Expires, ok = r.ASCII()
		}
		return ok
	})
	if ok && r.End() {
		return nil
	}
	*c = Challenge{}
	return json.Unmarshal(b, c)
}

// AppendJSON appends the result's JSON, the bytes json.Marshal writes.
func (res *Result) AppendJSON(b []byte) []byte {
	b = plainjson.AppendString(append(b, `{"node":`...), res.Node)
	b = plainjson.AppendString(append(b, `,"verdict":`...), res.Verdict)
	b = plainjson.AppendString(append(b, `,"state":`...), res.State)
	b = append(b, `,"failures":`...)
	if res.Failures == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, f := range res.Failures {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(append(b, `{"entry":`...), f.Entry, 10)
			if f.Path != "" {
				b = plainjson.AppendString(append(b, `,"path":`...), f.Path)
			}
			b = plainjson.AppendString(append(b, `,"id":`...), f.ID)
			if f.Detail != "" {
				b = plainjson.AppendString(append(b, `,"detail":`...), f.Detail)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = strconv.AppendUint(append(b, `,"entries":`...), res.Entries, 10)
	b = strconv.AppendUint(append(b, `,"round":`...), res.Round, 10)
	if res.EAR != "" {
		b = plainjson.AppendString(append(b, `,"ear":`...), res.EAR)
	}
	return append(b, '}')
}

// DecodeJSON decodes a result into res, which must be the zero Result.
func (res *Result) DecodeJSON(b []byte) error {
	r := plainjson.NewReader(b)
	ok := r.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "node":
			res.Node, ok = r.ASCII()
		case "verdict":
			res.Verdict, ok = r.ASCII()
		case "state":
			res.State, ok = r.ASCII()
		case "failures":
			res.Failures = []Failure{}
			ok = r.Array(func() bool {
				var f Failure
				ok := r.Object(func(key []byte) bool {
					var ok bool
					switch string(key) {
					case "entry":
						f.Entry, ok = r.Int(64)
					case "path":
						f.Path, ok = r.ASCII()
					case "id":
						f.ID, ok = r.ASCII()
					case "detail":
						f.Detail, ok = r.ASCII()
					}
					return ok
				})
				res.Failures = append(res.Failures, f)
				return ok
			})
		case "entries":
			res.Entries, ok = r.Uint(64)
		case "round":
			res.Round, ok = r.Uint(64)
		case "ear":
			res.EAR, ok = r.ASCII()
		}
		return ok
	})
	if ok && r.End() {
		return nil
	}
	*res = Result{}
	return json.Unmarshal(b, res)
}
