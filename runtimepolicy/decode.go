package runtimepolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/imago-ima/imago/internal/hexdec"
)

// Limits of the policy reader.
const (
	// MaxNameLen bounds a path, keyring or buffer name in a policy: the
	// kernel's PATH_MAX.
	MaxNameLen = 4096
	// MaxDigestsPerName bounds the digests listed for one name.
	MaxDigestsPerName = 65535
	// MaxMemberLen bounds every top-level value other than the three digest
	// maps (excludes, ima, meta, verification-keys, unknown keys).
	MaxMemberLen = 64 << 20
	// MaxPayloadLen bounds the payload of a DSSE envelope (base64 text).
	MaxPayloadLen = 1 << 30
)

// FormatError reports a policy, envelope, allowlist or exclude list that
// cannot be read: the byte offset and line where the problem was found, the
// member it concerns, and why.
type FormatError struct {
	Offset int64
	Line   int
	Member string // "digests", "excludes[3]", ... when known
	Err    error
}

func (e *FormatError) Error() string {
	s := fmt.Sprintf("runtimepolicy: line %d (byte %d)", e.Line, e.Offset)
	if e.Member != "" {
		s += ": " + e.Member
	}
	return s + ": " + e.Err.Error()
}

func (e *FormatError) Unwrap() error { return e.Err }

// mapKind names the three maps of digests in a policy.
type mapKind uint8

const (
	kindDigests mapKind = iota
	kindKeyrings
	kindIMABuf
)

func (k mapKind) String() string {
	return [...]string{"digests", "keyrings", "ima-buf"}[k]
}

// sink receives the three digest maps as they stream past, a record (see
// table) per name: the reader asks for room to write a record of up to n
// bytes in, writes it at the room's start, and adds it. The names and
// digests of a record are validated (digests in binary, from lower-case
// hex with or without an algorithm prefix).
type sink interface {
	room(k mapKind, n int) ([]byte, error)
	add(k mapKind, n int)
}

// header is everything of a policy but the three digest maps.
type header struct {
	meta             Meta
	hasMeta          bool
	release          int
	excludes         []string
	ima              IMA
	verificationKeys string
	extra            []RawMember
	env              *envelope
}

// decodeDoc reads one policy document (or, when allowed, a DSSE envelope)
// from l, passing the digest maps to s.
func decodeDoc(l *lexer, s sink, allowEnvelope bool) (*header, error) {
	h := &header{ima: IMA{LogHashAlg: "sha1"}}
	if err := l.expect('{', "to open the policy object"); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	policyKeys := 0
	var name, scratch []byte
	empty, err := l.empty('}')
	if err != nil {
		return nil, err
	}
	for !empty {
		keyAt := l.off
		key, err := l.str(name[:0], MaxNameLen)
		if err != nil {
			return nil, err
		}
		k := string(key)
		if seen[k] {
			return nil, l.fail("key %q appears twice", k)
		}
		seen[k] = true
		if err := l.expect(':', "after a key"); err != nil {
			return nil, err
		}
		member := func(err error) error {
			var fe *FormatError
			if errors.As(err, &fe) && fe.Member == "" {
				fe.Member = k
				return fe
			}
			return &FormatError{Offset: keyAt, Line: l.line, Member: k, Err: err}
		}
		switch k {
		case "digests", "hashes", "keyrings", "ima-buf":
			kind := map[string]mapKind{"digests": kindDigests, "hashes": kindDigests, "keyrings": kindKeyrings, "ima-buf": kindIMABuf}[k]
			if k == "hashes" && seen["digests"] || k == "digests" && seen["hashes"] {
				return nil, l.fail("both digests and hashes")
			}
			policyKeys++
			if scratch, err = decodeMap(l, s, kind, scratch); err != nil {
				return nil, member(err)
			}
		}
		var raw []byte
		switch k {
		case "digests", "hashes", "keyrings", "ima-buf":
		default:
			if raw, err = l.raw(MaxMemberLen); err != nil {
				return nil, member(err)
			}
		}
		switch k {
		case "digests", "hashes", "keyrings", "ima-buf":
		case "payload", "payloadType", "signatures":
			if !allowEnvelope {
				return nil, member(errors.New("an envelope inside an envelope's payload"))
			}
			if h.env == nil {
				h.env = &envelope{}
			}
			if err := h.env.set(k, raw); err != nil {
				return nil, member(err)
			}
		case "meta":
			policyKeys++
			h.hasMeta = true
			if err := decodeMeta(raw, &h.meta); err != nil {
				return nil, member(err)
			}
		case "release":
			policyKeys++
			if err := decodeInt(raw, &h.release); err != nil {
				return nil, member(err)
			}
		case "excludes":
			policyKeys++
			if err := json.Unmarshal(raw, &h.excludes); err != nil || h.excludes == nil && string(raw) != "null" {
				return nil, member(fmt.Errorf("want a list of strings"))
			}
		case "ima":
			policyKeys++
			if err := decodeIMA(raw, &h.ima); err != nil {
				return nil, member(err)
			}
		case "verification-keys":
			policyKeys++
			if err := json.Unmarshal(raw, &h.verificationKeys); err != nil {
				return nil, member(fmt.Errorf("want a string holding JSON (Keylime stores it so)"))
			}
		default:
			h.extra = append(h.extra, RawMember{Key: k, Value: json.RawMessage(raw)})
		}
		name = key
		more, err := l.more('}')
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if err := l.end(); err != nil {
		return nil, err
	}
	if h.env != nil {
		if policyKeys > 0 {
			return nil, l.fail("a DSSE envelope (payload) with runtime policy keys beside it")
		}
		return h, nil
	}
	if !h.hasMeta {
		return nil, l.fail("no meta object: not a runtime policy")
	}
	if h.excludes == nil {
		h.excludes = []string{}
	}
	return h, nil
}

// decodeMap reads {"name": ["hex", ...], ...} into s.
func decodeMap(l *lexer, s sink, kind mapKind, scratch []byte) ([]byte, error) {
	if err := l.expect('{', "to open an object of names"); err != nil {
		return scratch, err
	}
	empty, err := l.empty('}')
	if err != nil {
		return scratch, err
	}
	for !empty {
		if !l.slow {
			if l.br.Buffered() < 16<<10 {
				l.br.Peek(l.br.Size()) // refill, so that members are whole in the buffer
			}
			closed, n := l.fastMembers(s, kind)
			if closed {
				return scratch, nil
			}
			if n > 0 {
				continue // at the end of the buffer, or before a member for the token reader
			}
		}
		name, err := l.str(scratch[:0], MaxNameLen)
		if err != nil {
			return scratch, err
		}
		scratch = name
		if err := l.expect(':', "after a name"); err != nil {
			return scratch, err
		}
		rec := &l.rec
		rec.begin(name)
		if err := l.expect('[', "to open a list of digests"); err != nil {
			return scratch, err
		}
		n := 0
		done, err := l.empty(']')
		if err != nil {
			return scratch, err
		}
		var hexBuf [160]byte
		var bin [maxDigestBytes]byte
		for !done {
			h, err := l.strNoCtl(hexBuf[:0], 160)
			if err != nil {
				return scratch, err
			}
			size, err := decodeDigest(bin[:], h)
			if err != nil {
				return scratch, l.fail("%q: %v", clip(string(scratch)), err)
			}
			if n++; n > MaxDigestsPerName {
				return scratch, l.fail("%q: more than %d digests", clip(string(scratch)), MaxDigestsPerName)
			}
			rec.digest(bin[:size])
			if done, err = l.moreNot(']'); err != nil {
				return scratch, err
			}
		}
		room, err := s.room(kind, len(rec.b))
		if err != nil {
			return scratch, l.fail("%q: %v", clip(string(scratch)), err)
		}
		s.add(kind, copy(room, rec.b))
		more, err := l.more('}')
		if err != nil {
			return scratch, err
		}
		empty = !more
	}
	return scratch, nil
}

// moreNot is more with the result inverted: true at the closing byte.
func (l *lexer) moreNot(closing byte) (bool, error) {
	m, err := l.more(closing)
	return !m, err
}

// decodeDigest checks a policy digest and decodes it into dst (which
// holds maxDigestBytes), returning its length in bytes. Keylime's schema
// wants bare lower-case hex; its own test data has "sha256:<hex>", which
// is read leniently.
func decodeDigest(dst, h []byte) (int, error) {
	if decodeLowerHex(dst, h) {
		return len(h) / 2, nil // the usual form: no prefix
	}
	if i := bytes.IndexByte(h, ':'); i >= 0 {
		h = h[i+1:]
	}
	if !decodeLowerHex(dst, h) {
		return 0, checkHex(string(h))
	}
	return len(h) / 2, nil
}

// maxDigestBytes is the longest policy digest, 128 hex digits (sha512).
const maxDigestBytes = 64

// decodeLowerHex checks a digest as checkHex does, without allocating (40
// to 128 lower-case hex digits, an even number), and decodes it into dst
// in the same pass.
func decodeLowerHex(dst, h []byte) bool {
	if len(h) < 40 || len(h) > 128 || len(h)%2 != 0 {
		return false
	}
	ok, upper := hexdec.Decode(dst, h)
	return ok && !upper
}

func decodeMeta(raw []byte, m *Meta) error {
	var v struct {
		Version   *json.Number `json:"version"`
		Generator *json.Number `json:"generator"`
		Timestamp *string      `json:"timestamp"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("want an object with version, generator and timestamp: %v", err)
	}
	if v.Version == nil {
		return errors.New("no version")
	}
	ver, err := v.Version.Int64()
	if err != nil || ver < 0 {
		return fmt.Errorf("version %s is not a non-negative integer", v.Version)
	}
	if ver > Version {
		return fmt.Errorf("version %d: this imago reads runtime policy version %d", ver, Version)
	}
	m.Version = int(ver)
	if v.Generator != nil {
		g, err := v.Generator.Int64()
		if err != nil || g < GeneratorUnknown || g > GeneratorLegacyAllowList {
			return fmt.Errorf("generator %s, want 0..3", v.Generator)
		}
		m.Generator, m.HasGenerator = int(g), true
	}
	if v.Timestamp != nil {
		m.Timestamp = *v.Timestamp
	}
	return nil
}

func decodeInt(raw []byte, out *int) error {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return errors.New("want an integer")
	}
	v, err := n.Int64()
	if err != nil || v < 0 || v > 1<<31 {
		return fmt.Errorf("%s is not a non-negative integer", n)
	}
	*out = int(v)
	return nil
}

func decodeIMA(raw []byte, m *IMA) error {
	var v struct {
		IgnoredKeyrings *[]string        `json:"ignored_keyrings"`
		LogHashAlg      *string          `json:"log_hash_alg"`
		DMPolicy        *json.RawMessage `json:"dm_policy"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("want {ignored_keyrings, log_hash_alg, dm_policy}: %v", err)
	}
	if v.IgnoredKeyrings != nil {
		m.IgnoredKeyrings = *v.IgnoredKeyrings
	}
	if v.LogHashAlg != nil {
		switch *v.LogHashAlg {
		case "sha1", "sha256", "sha384", "sha512":
			m.LogHashAlg = *v.LogHashAlg
		default:
			return fmt.Errorf("log_hash_alg %q, want sha1, sha256, sha384 or sha512", *v.LogHashAlg)
		}
	}
	if v.DMPolicy != nil && string(*v.DMPolicy) != "null" {
		return errors.New("dm_policy: device-mapper policies are not supported (Keylime's schema allows only null)")
	}
	return nil
}

// editSink builds a Policy's maps.
type editSink struct {
	maps [3]*DigestMap
	buf  []byte
}

func (e *editSink) room(k mapKind, n int) ([]byte, error) {
	if len(e.buf) < n {
		e.buf = make([]byte, n)
	}
	return e.buf, nil
}

func (e *editSink) add(k mapKind, n int) {
	r := e.buf[:n]
	name := recordName(r)
	e.maps[k].Set(string(name), Digests{r[2+len(name):]}.Hex())
}

// Parse reads a runtime policy into a Policy that can be edited and
// written back. A DSSE envelope is verified with opts.Key (see Options) and
// its payload read. Keys Keylime's schema requires but older policies and
// Keylime's own test data leave out get Keylime's defaults.
func Parse(r io.Reader, opts Options) (*Policy, error) {
	es := &editSink{maps: [3]*DigestMap{NewDigestMap(), NewDigestMap(), NewDigestMap()}}
	h, sig, err := read(r, es, opts)
	if err != nil {
		return nil, err
	}
	p := &Policy{
		Meta:             h.meta,
		Release:          h.release,
		Digests:          es.maps[kindDigests],
		Excludes:         h.excludes,
		Keyrings:         es.maps[kindKeyrings],
		IMA:              h.ima,
		IMABuf:           es.maps[kindIMABuf],
		VerificationKeys: h.verificationKeys,
		Extra:            h.extra,
		Signature:        sig,
	}
	if _, err := CompileExcludes(p.Excludes); err != nil {
		return nil, err
	}
	if _, err := ParseVerificationKeys(p.VerificationKeys); err != nil {
		return nil, err
	}
	return p, nil
}

// read decodes a policy or envelope into s, verifying an envelope first.
func read(r io.Reader, s sink, opts Options) (*header, *Signature, error) {
	l := newLexer(r)
	l.slow = opts.slow
	h, err := decodeDoc(l, s, true)
	if err != nil {
		return nil, nil, err
	}
	if h.env == nil {
		if opts.Key != nil {
			return nil, nil, ErrNotSigned
		}
		return h, nil, nil
	}
	payload, sig, err := h.env.open(opts.Key)
	if err != nil {
		return nil, nil, err
	}
	pl := newLexer(bytes.NewReader(payload))
	pl.slow = opts.slow
	h2, err := decodeDoc(pl, s, false)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Member = joinMember("payload", fe.Member)
		}
		return nil, nil, err
	}
	return h2, sig, nil
}

func joinMember(a, b string) string {
	if b == "" {
		return a
	}
	return a + "." + b
}
