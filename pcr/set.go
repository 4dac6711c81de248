package pcr

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Set holds PCR values by bank and index. Its JSON form is imago's PCR shape,
// shared by `log replay --json`, `eventlog replay --json` and `tpm pcrread
// --json`: {"sha256": {"10": "<hex>"}}.
type Set map[Bank]map[int][]byte

// Get returns the value of PCR i in bank b and whether it is present.
func (s Set) Get(b Bank, i int) ([]byte, bool) {
	v, ok := s[b][i]
	return v, ok
}

// Put stores a copy of v as PCR i of bank b.
func (s Set) Put(b Bank, i int, v []byte) {
	m := s[b]
	if m == nil {
		m = make(map[int][]byte)
		s[b] = m
	}
	m[i] = bytes.Clone(v)
}

// Banks returns the banks present, in TPM_ALG_ID order.
func (s Set) Banks() []Bank {
	return slices.Sorted(maps.Keys(s))
}

// Indexes returns the PCR indexes present in bank b, ascending.
func (s Set) Indexes(b Bank) []int {
	return slices.Sorted(maps.Keys(s[b]))
}

// Merge copies every value of o into s, overwriting.
func (s Set) Merge(o Set) {
	for b, m := range o {
		for i, v := range m {
			s.Put(b, i, v)
		}
	}
}

// MarshalJSON writes {"<bank>": {"<index>": "<hex>"}} with banks and indexes in
// ascending order.
func (s Set) MarshalJSON() ([]byte, error) { return s.AppendJSON(nil), nil }

// AppendJSON appends the JSON form MarshalJSON returns.
func (s Set) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	var bankBuf [8]Bank
	for bi, bank := range sortedKeys(s, bankBuf[:0]) {
		if bi > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, bank.String())
		b = append(b, ':', '{')
		var idxBuf [32]int
		for ii, i := range sortedKeys(s[bank], idxBuf[:0]) {
			if ii > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, '"', ':', '"')
			b = hex.AppendEncode(b, s[bank][i])
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// sortedKeys appends m's keys to buf, sorted (a Set's JSON is written
// every round: no allocation for the usual sizes).
func sortedKeys[K cmp.Ordered, V any](m map[K]V, buf []K) []K {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// UnmarshalJSON reads the form MarshalJSON writes. It also accepts a wrapper
// object {"pcrs": {...}} as `log replay --json` prints. s is written only if
// the whole input is good.
func (s *Set) UnmarshalJSON(data []byte) error {
	out, err := ParseJSON(data)
	if err != nil {
		return err
	}
	*s = out
	return nil
}

// ParseJSON parses imago's PCR JSON: {"sha256": {"10": "<hex>"}}, optionally
// wrapped as {"pcrs": {...}}. Every value must have the bank's digest size.
func ParseJSON(data []byte) (Set, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonError("", err)
	}
	if inner, ok := raw["pcrs"]; ok {
		raw = nil
		if err := json.Unmarshal(inner, &raw); err != nil {
			return nil, jsonError(`"pcrs"`, err)
		}
	}
	out := make(Set)
	for name, body := range raw {
		b, err := ParseBank(name)
		if err != nil {
			continue // other keys (entries, violations) are not PCRs
		}
		var vals map[string]string
		if err := json.Unmarshal(body, &vals); err != nil {
			return nil, jsonError("bank "+name, err)
		}
		for k, v := range vals {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i > MaxIndex {
				return nil, fmt.Errorf("pcr: json: bank %s: bad PCR index %q", name, k)
			}
			d, err := decodeHex([]byte(v))
			if err != nil {
				return nil, fmt.Errorf("pcr: json: bank %s PCR %d: %w", name, i, err)
			}
			if b.Known() && len(d) != b.Size() {
				return nil, fmt.Errorf("pcr: json: bank %s PCR %d: %d bytes, want %d", name, i, len(d), b.Size())
			}
			out.Put(b, i, d)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pcr: json: no PCR bank found")
	}
	return out, nil
}

// jsonError says what is wrong with the JSON at where in this package's
// words, without encoding/json's Go type names.
func jsonError(where string, err error) error {
	if where != "" {
		where += ": "
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("pcr: json: %snot JSON at byte %d (%v)", where, se.Offset, se)
	case errors.As(err, &te) && strings.HasPrefix(where, "bank "):
		return fmt.Errorf(`pcr: json: %swant an object of "<index>": "<hex>" pairs (found a %s)`, where, te.Value)
	case errors.As(err, &te):
		return fmt.Errorf(`pcr: json: %swant an object of banks, {"sha256": {"10": "<hex>"}} (found a %s)`, where, te.Value)
	}
	return fmt.Errorf("pcr: json: %s%v", where, err)
}

// MaxIndex is the largest PCR index imago accepts from input. TPMs have 24
// PCRs; IMA policy allows pcr= up to 63 (ima-spec.md §1.4), so values up to 63
// are carried (a TPM extend of them fails, but the list keeps them).
const MaxIndex = 63
