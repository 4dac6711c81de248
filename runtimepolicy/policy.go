package runtimepolicy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// Version is the runtime policy format version this package reads and
// writes (Keylime's RUNTIME_POLICY_CURRENT_VERSION).
const Version = 1

// Generator values of meta.generator (Keylime's RUNTIME_POLICY_GENERATOR).
const (
	GeneratorUnknown             = 0
	GeneratorEmptyAllowList      = 1
	GeneratorCompatibleAllowList = 2
	GeneratorLegacyAllowList     = 3
)

// Policy is a Keylime runtime policy v1 as a value that can be edited,
// merged and written back (ima.py RUNTIME_POLICY_SCHEMA). Maps keep their
// keys in the order they were first added, as Python's dicts do, so that
// Marshal writes what Keylime writes for the same input.
type Policy struct {
	Meta     Meta
	Release  int
	Digests  *DigestMap
	Excludes []string
	Keyrings *DigestMap
	IMA      IMA
	IMABuf   *DigestMap
	// VerificationKeys is the JSON document Keylime stores as a string:
	// {"pubkeys": [base64 DER SubjectPublicKeyInfo], "keyids": [int]}; ""
	// when there are none.
	VerificationKeys string
	// Extra holds top-level keys Keylime does not define, in order, as
	// their raw JSON: Keylime keeps them when it signs a policy.
	Extra []RawMember
	// Signature is the DSSE signature that verified the policy, nil for
	// a policy that was not in an envelope. Marshal ignores it.
	Signature *Signature
}

// Meta is the policy's "meta" object.
type Meta struct {
	Version   int
	Generator int
	// Timestamp is Python's str(datetime.now()), "" when absent.
	Timestamp string
	// HasGenerator is false when the input had no generator (Keylime's own
	// test data); Marshal then leaves it out.
	HasGenerator bool
}

// IMA is the policy's "ima" object.
type IMA struct {
	// IgnoredKeyrings are keyrings whose ima-buf key entries are neither
	// checked nor learned; "*" ignores every keyring.
	IgnoredKeyrings []string
	// LogHashAlg is the template hash algorithm of the list the policy was
	// made for: sha1, sha256, sha384 or sha512.
	LogHashAlg string
}

// RawMember is one top-level key with its raw JSON value.
type RawMember struct {
	Key   string
	Value json.RawMessage
}

// New returns an empty policy as Keylime's EMPTY_RUNTIME_POLICY: version 1,
// generator EmptyAllowList, log_hash_alg sha1.
func New() *Policy {
	return &Policy{
		Meta:     Meta{Version: Version, Generator: GeneratorEmptyAllowList, HasGenerator: true},
		Digests:  NewDigestMap(),
		Keyrings: NewDigestMap(),
		IMABuf:   NewDigestMap(),
		IMA:      IMA{LogHashAlg: "sha1"},
		Excludes: []string{},
	}
}

// DigestMap maps a path (or keyring or buffer name) to hex digests, keeping
// the order in which names were first added.
type DigestMap struct {
	names []string
	m     map[string][]string
}

// NewDigestMap returns an empty map.
func NewDigestMap() *DigestMap { return &DigestMap{m: make(map[string][]string)} }

// NewDigestMapSize returns an empty map with room for n names.
func NewDigestMapSize(n int) *DigestMap {
	return &DigestMap{names: make([]string, 0, n), m: make(map[string][]string, n)}
}

// Len returns the number of names.
func (d *DigestMap) Len() int { return len(d.names) }

// Names returns the names in insertion order. The slice must not be
// changed.
func (d *DigestMap) Names() []string { return d.names }

// Get returns the digests of name.
func (d *DigestMap) Get(name string) ([]string, bool) {
	v, ok := d.m[name]
	return v, ok
}

// Set replaces the digests of name, keeping its position if it exists (as
// a Python dict assignment does).
func (d *DigestMap) Set(name string, digests []string) {
	if _, ok := d.m[name]; !ok {
		d.names = append(d.names, name)
	}
	d.m[name] = digests
}

// Add appends digests to name's list.
func (d *DigestMap) Add(name string, digests ...string) {
	v, ok := d.m[name]
	if !ok {
		d.names = append(d.names, name)
	}
	d.m[name] = append(v, digests...)
}

// Merge adds every name of o: a new name takes o's list as it is, a known
// name gets the sorted union of both lists (keylime's merge_maplists).
func (d *DigestMap) Merge(o *DigestMap) {
	if len(d.names) == 0 {
		d.copyOf(o)
		return
	}
	for _, n := range o.names {
		v := o.m[n]
		old, ok := d.m[n]
		if !ok {
			d.Set(n, slices.Clone(v))
			continue
		}
		d.m[n] = sortedUnique(append(slices.Clone(old), v...))
	}
}

// copyOf makes the empty d a copy of o, every list copied into one array
// (each capped, so that an append to one copies it).
func (d *DigestMap) copyOf(o *DigestMap) {
	total := 0
	for _, v := range o.m {
		total += len(v)
	}
	all := make([]string, 0, total)
	*d = *NewDigestMapSize(len(o.names))
	for _, n := range o.names {
		v := o.m[n]
		all = append(all, v...)
		d.names = append(d.names, n)
		d.m[n] = all[len(all)-len(v) : len(all) : len(all)]
	}
}

// Normalize sorts every list and removes repeated digests, as keylime-policy
// create does before it writes a policy.
func (d *DigestMap) Normalize() {
	for n, v := range d.m {
		if len(v) > 1 {
			d.m[n] = sortedUnique(v)
		}
	}
}

func sortedUnique(v []string) []string {
	if len(v) < 2 {
		return v // nothing to sort or remove: no copy
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return slices.Compact(v)
}

// Marshal writes the policy as Keylime's json.dumps writes it: keys in
// Keylime's order, ", " and ": " separators, non-ASCII escaped as \uXXXX.
func (p *Policy) Marshal() []byte {
	b := make([]byte, 0, 256+p.Digests.approxSize()+p.Keyrings.approxSize()+p.IMABuf.approxSize())
	b = append(b, `{"meta": {"version": `...)
	b = strconv.AppendInt(b, int64(p.Meta.Version), 10)
	if p.Meta.HasGenerator {
		b = append(b, `, "generator": `...)
		b = strconv.AppendInt(b, int64(p.Meta.Generator), 10)
	}
	if p.Meta.Timestamp != "" {
		b = append(b, `, "timestamp": `...)
		b = appendPyString(b, p.Meta.Timestamp)
	}
	b = append(b, `}, "release": `...)
	b = strconv.AppendInt(b, int64(p.Release), 10)
	b = append(b, `, "digests": `...)
	b = p.Digests.appendJSON(b)
	b = append(b, `, "excludes": `...)
	b = appendPyStrings(b, p.Excludes)
	b = append(b, `, "keyrings": `...)
	b = p.Keyrings.appendJSON(b)
	b = append(b, `, "ima": {"ignored_keyrings": `...)
	b = appendPyStrings(b, p.IMA.IgnoredKeyrings)
	b = append(b, `, "log_hash_alg": `...)
	b = appendPyString(b, p.IMA.LogHashAlg)
	b = append(b, `, "dm_policy": null}, "ima-buf": `...)
	b = p.IMABuf.appendJSON(b)
	b = append(b, `, "verification-keys": `...)
	b = appendPyString(b, p.VerificationKeys)
	for _, x := range p.Extra {
		b = append(b, ", "...)
		b = appendPyString(b, x.Key)
		b = append(b, ": "...)
		b = appendPyValue(b, x.Value)
	}
	return append(b, '}')
}

func (d *DigestMap) approxSize() int {
	if d == nil {
		return 0
	}
	return len(d.names) * 120
}

func (d *DigestMap) appendJSON(b []byte) []byte {
	if d == nil || len(d.names) == 0 {
		return append(b, "{}"...)
	}
	b = append(b, '{')
	for i, n := range d.names {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPyString(b, n)
		b = append(b, ": "...)
		b = appendPyStrings(b, d.m[n])
	}
	return append(b, '}')
}

func appendPyStrings(b []byte, v []string) []byte {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPyString(b, s)
	}
	return append(b, ']')
}

// Check reports the first way p breaks Keylime's schema (RUNTIME_POLICY_
// SCHEMA plus the verification-keys document), the checks keylime-policy
// makes before it writes or signs a policy.
func (p *Policy) Check() error {
	if p.Meta.Version < 0 || p.Meta.Version > Version {
		return fmt.Errorf("runtimepolicy: meta.version %d, this imago reads version %d", p.Meta.Version, Version)
	}
	if p.Meta.Generator < GeneratorUnknown || p.Meta.Generator > GeneratorLegacyAllowList {
		return fmt.Errorf("runtimepolicy: meta.generator %d out of range 0..3", p.Meta.Generator)
	}
	if p.Release < 0 {
		return fmt.Errorf("runtimepolicy: release %d is negative", p.Release)
	}
	switch p.IMA.LogHashAlg {
	case "sha1", "sha256", "sha384", "sha512":
	default:
		return fmt.Errorf("runtimepolicy: ima.log_hash_alg %q, want sha1, sha256, sha384 or sha512", p.IMA.LogHashAlg)
	}
	for _, m := range []struct {
		key string
		d   *DigestMap
	}{{"digests", p.Digests}, {"keyrings", p.Keyrings}, {"ima-buf", p.IMABuf}} {
		if m.d.allHex() {
			continue
		}
		for _, n := range m.d.names { // the first bad one in order
			for _, h := range m.d.m[n] {
				if err := checkHex(h); err != nil {
					return fmt.Errorf("runtimepolicy: %s[%q]: %w", m.key, n, err)
				}
			}
		}
	}
	if _, err := CompileExcludes(p.Excludes); err != nil {
		return err
	}
	if _, err := ParseVerificationKeys(p.VerificationKeys); err != nil {
		return err
	}
	return nil
}

// allHex reports whether every digest passes checkHex (in no order).
func (d *DigestMap) allHex() bool {
	for _, v := range d.m {
		for _, h := range v {
			if checkHex(h) != nil {
				return false
			}
		}
	}
	return true
}

// checkHex checks a policy digest: 40 to 128 lower-case hex digits, an even
// number of them.
func checkHex(h string) error {
	if len(h) < 40 || len(h) > 128 || len(h)%2 != 0 {
		return fmt.Errorf("digest %q: want 40 to 128 lower-case hex digits, an even number", clip(h))
	}
	for i := 0; i < len(h); i++ {
		if !lowerHex[h[i]] {
			return fmt.Errorf("digest %q: want 40 to 128 lower-case hex digits", clip(h))
		}
	}
	return nil
}

// lowerHex marks the bytes 0-9 and a-f.
var lowerHex = func() (t [256]bool) {
	for _, c := range hexDigits {
		t[c] = true
	}
	return t
}()

func clip(s string) string {
	if len(s) > 72 {
		return s[:72] + "..."
	}
	return s
}
