package appraise

import (
	"encoding/json"
	"strconv"

	"github.com/imago-ima/imago/internal/plainjson"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/verify"
)

// A node's State is stored as JSON and read and written every round; these
// write and read it without encoding/json's reflection, in the same form
// (FuzzStateJSON holds them to encoding/json).

// AppendJSON appends the State's JSON, the bytes json.Marshal writes.
func (s *State) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if c := s.Clock; c != nil {
		b = strconv.AppendUint(append(b, `"clock":{"clock":`...), c.Clock, 10)
		b = strconv.AppendUint(append(b, `,"reset_count":`...), uint64(c.ResetCount), 10)
		b = strconv.AppendUint(append(b, `,"restart_count":`...), uint64(c.RestartCount), 10)
		b = strconv.AppendBool(append(b, `,"safe":`...), c.Safe)
		b = append(b, `},`...)
	}
	v := &s.Verify
	b = strconv.AppendInt(append(b, `"verify":{"next":`...), int64(v.Next), 10)
	if v.ListBank != "" {
		b = plainjson.AppendString(append(b, `,"list_bank":`...), v.ListBank)
	}
	if len(v.PCRs) > 0 {
		b = append(b, `,"pcrs":[`...)
		for i, p := range v.PCRs {
			if i > 0 {
				b = append(b, ',')
			}
			b = plainjson.AppendString(append(b, `{"bank":`...), p.Bank)
			b = strconv.AppendInt(append(b, `,"pcr":`...), int64(p.PCR), 10)
			b = plainjson.AppendString(append(b, `,"value":`...), p.Value)
			if p.Variant != "" {
				b = plainjson.AppendString(append(b, `,"variant":`...), p.Variant)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(v.Keys) > 0 {
		b = append(b, `,"keys":[`...)
		for i, k := range v.Keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = plainjson.AppendString(append(b, `{"keyring":`...), k.Keyring)
			b = strconv.AppendInt(append(b, `,"entry":`...), int64(k.Entry), 10)
			b = strconv.AppendUint(append(b, `,"keyid":`...), uint64(k.KeyID), 10)
			b = plainjson.AppendBytes(append(b, `,"data":`...), k.Data)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if v.BootAggregate != "" {
		b = plainjson.AppendString(append(b, `,"boot_aggregate":`...), v.BootAggregate)
	}
	if v.Late {
		b = append(b, `,"late":true`...)
	}
	for _, f := range []struct {
		key string
		v   int
	}{{`,"lag":`, v.Lag}, {`,"failed":`, v.Failed}, {`,"first_failed":`, v.FirstFailed}} {
		if f.v != 0 {
			b = strconv.AppendInt(append(b, f.key...), int64(f.v), 10)
		}
	}
	b = append(b, '}')
	if s.BootLog {
		b = append(b, `,"boot_log":true`...)
	}
	return append(b, '}')
}

// ParseState reads a State's JSON (empty input is the zero State).
func ParseState(b []byte) (State, error) {
	var s State
	if len(b) == 0 {
		return s, nil
	}
	if readState(b, &s) {
		return s, nil
	}
	s = State{}
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, err
	}
	return s, nil
}

// readState reads a State in the plain form AppendJSON writes (any key
// order, JSON white space); it reports false for anything else, which
// encoding/json then reads.
func readState(b []byte, s *State) bool {
	r := plainjson.NewReader(b)
	ok := r.Object(func(key []byte) bool {
		switch string(key) {
		case "clock":
			s.Clock = new(quote.ClockInfo)
			return readClock(r, s.Clock)
		case "verify":
			return readVerifyState(r, &s.Verify)
		case "boot_log":
			var ok bool
			s.BootLog, ok = r.Bool()
			return ok
		}
		return false
	})
	return ok && r.End()
}

func readClock(r *plainjson.Reader, c *quote.ClockInfo) bool {
	return r.Object(func(key []byte) bool {
		var ok bool
		var v uint64
		switch string(key) {
		case "clock":
			c.Clock, ok = r.Uint(64)
		case "reset_count":
			v, ok = r.Uint(32)
			c.ResetCount = uint32(v)
		case "restart_count":
			v, ok = r.Uint(32)
			c.RestartCount = uint32(v)
		case "safe":
			c.Safe, ok = r.Bool()
		}
		return ok
	})
}

func readVerifyState(r *plainjson.Reader, v *verify.State) bool {
	integer := func(dst *int) bool {
		n, ok := r.Int(64)
		*dst = int(n)
		return ok
	}
	return r.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "next":
			ok = integer(&v.Next)
		case "list_bank":
			v.ListBank, ok = r.ASCII()
		case "pcrs":
			v.PCRs = []verify.PCRValue{}
			ok = r.Array(func() bool {
				var p verify.PCRValue
				ok := r.Object(func(key []byte) bool {
					var ok bool
					switch string(key) {
					case "bank":
						p.Bank, ok = r.ASCII()
					case "pcr":
						ok = integer(&p.PCR)
					case "value":
						p.Value, ok = r.ASCII()
					case "variant":
						p.Variant, ok = r.ASCII()
					}
					return ok
				})
				v.PCRs = append(v.PCRs, p)
				return ok
			})
		case "keys":
			v.Keys = []verify.LearnedKey{}
			ok = r.Array(func() bool {
				var k verify.LearnedKey
				ok := r.Object(func(key []byte) bool {
					var ok bool
					switch string(key) {
					case "keyring":
						k.Keyring, ok = r.ASCII()
					case "entry":
						ok = integer(&k.Entry)
					case "keyid":
						var id uint64
						id, ok = r.Uint(32)
						k.KeyID = uint32(id)
					case "data":
						k.Data, ok = r.Base64()
					}
					return ok
				})
				v.Keys = append(v.Keys, k)
				return ok
			})
		case "boot_aggregate":
			v.BootAggregate, ok = r.ASCII()
		case "late":
			v.Late, ok = r.Bool()
		case "lag":
			ok = integer(&v.Lag)
		case "failed":
			ok = integer(&v.Failed)
		case "first_failed":
			ok = integer(&v.FirstFailed)
		}
		return ok
	})
}
