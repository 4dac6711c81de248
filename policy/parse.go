package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/imago-ima/imago/ima"
)

// Limits on input (go-style: every length bounded before allocation).
const (
	// MaxLineLen is the longest rule line: the kernel parses one write() of
	// at most PAGE_SIZE-1 bytes at a time (ima_write_policy).
	MaxLineLen = 4095
	// MaxPolicySize bounds a whole policy file.
	MaxPolicySize = 16 << 20
	// MaxRules bounds the number of rules in one policy.
	MaxRules = 1 << 16
	// maxPCR is the first invalid pcr= value: bits in the kernel's unsigned
	// long measured_pcrs (INVALID_PCR), 64 on 64-bit kernels (ima-spec.md §1.4).
	maxPCR = 64
)

// ParseError is a rule the kernel would reject: its 1-based line and byte
// column, the token at fault ("" when the whole rule is at fault) and why.
type ParseError struct {
	Line, Col int
	Token     string
	Err       error
}

func (e *ParseError) Error() string {
	if e.Token != "" {
		return fmt.Sprintf("%d:%d: %q: %v", e.Line, e.Col, e.Token, e.Err)
	}
	return fmt.Sprintf("%d:%d: %v", e.Line, e.Col, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ErrTooLarge is returned for input beyond MaxPolicySize, MaxLineLen or
// MaxRules.
var ErrTooLarge = errors.New("policy too large")

// Parse reads a policy as it would be written to <securityfs>/ima/policy
// (ima-spec.md §8.1): one rule per line, blank lines and lines whose first
// non-blank character is '#' ignored. Like the kernel, one bad rule rejects
// the whole policy; the error is a *ParseError.
func Parse(r io.Reader) (*Policy, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPolicySize+1))
	if err != nil {
		return nil, err
	}
	return ParseBytes(data)
}

// ParseBytes is Parse on a byte slice.
func ParseBytes(data []byte) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, &ParseError{Line: 1, Col: 1, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxPolicySize)}
	}
	p := &Policy{}
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		if len(l) > MaxLineLen {
			return nil, &ParseError{Line: line, Col: MaxLineLen + 1, Err: fmt.Errorf("%w: line longer than %d bytes (one write to securityfs)", ErrTooLarge, MaxLineLen)}
		}
		if i := bytes.IndexByte(l, 0); i >= 0 {
			return nil, &ParseError{Line: line, Col: i + 1, Err: errors.New("NUL byte in policy text")}
		}
		// ima_parse_add_rule: skip leading blanks; '#' or nothing is a comment.
		t := bytes.TrimLeft(l, " \t")
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		s := string(l)
		if len(p.Rules) >= MaxRules {
			return nil, &ParseError{Line: line, Col: 1, Err: fmt.Errorf("%w: more than %d rules", ErrTooLarge, MaxRules)}
		}
		r, warns, err := parseRule(s, line)
		if err != nil {
			return nil, err
		}
		p.Rules = append(p.Rules, r)
		p.warnings = append(p.warnings, warns...)
	}
	return p, nil
}

// ParseRule parses one rule line (no comment, no newline), as an
// architecture policy string or a test would give it.
func ParseRule(s string) (Rule, error) {
	if strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, 0) >= 0 {
		return Rule{}, &ParseError{Line: 1, Col: 1, Err: errors.New("a rule is one line")}
	}
	if len(s) > MaxLineLen {
		return Rule{}, &ParseError{Line: 1, Col: MaxLineLen + 1, Err: ErrTooLarge}
	}
	r, _, err := parseRule(s, 1)
	return r, err
}

// condition kinds, to remember where each condition was written so that a
// rule-level check can point at the token at fault.
const (
	cFunc = iota
	cMask
	cFSMagic
	cFSName
	cFSUUID
	cUID
	cEUID
	cGID
	cEGID
	cFOwner
	cFGroup
	cLSM
	cKeyrings
	cLabel
	cPCR
	cTemplate
	cDigSig
	cModSig
	cSigV3
	cVerity
	cDirectIO
	cAlgos
	nCond
)

var condNames = [nCond]string{
	cFunc: "func", cMask: "mask", cFSMagic: "fsmagic", cFSName: "fsname", cFSUUID: "fsuuid",
	cUID: "uid", cEUID: "euid", cGID: "gid", cEGID: "egid", cFOwner: "fowner", cFGroup: "fgroup",
	cLSM: "LSM label conditions", cKeyrings: "keyrings", cLabel: "label", cPCR: "pcr",
	cTemplate: "template", cDigSig: "appraise_type", cModSig: "appraise_type=imasig|modsig",
	cSigV3: "appraise_type=sigv3", cVerity: "digest_type=verity", cDirectIO: "permit_directio",
	cAlgos: "appraise_algos",
}

type token struct {
	s   string
	col int
}

type ruleParser struct {
	r     Rule
	line  int
	at    [nCond]token // first token of each condition kind; col 0: absent
	act   token
	warns []Warning
}

func (rp *ruleParser) errAt(t token, format string, a ...any) error {
	return &ParseError{Line: rp.line, Col: t.col, Token: t.s, Err: fmt.Errorf(format, a...)}
}

func (rp *ruleParser) note(c int, t token) {
	if rp.at[c].col == 0 {
		rp.at[c] = t
	}
}

// parseRule follows ima_parse_rule: tokens separated by spaces or tabs, each
// matched against policy_tokens; the first bad token ends the parse; then
// ima_validate_rule checks the whole rule.
func parseRule(s string, line int) (Rule, []Warning, error) {
	rp := &ruleParser{line: line, r: Rule{Line: line}}
	first := token{}
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		t := token{s: s[i:j], col: i + 1}
		if first.col == 0 {
			first = t
		}
		if err := rp.token(t); err != nil {
			return Rule{}, nil, err
		}
		i = j
	}
	if first.col == 0 {
		first.col = 1
	}
	if err := rp.validate(first); err != nil {
		return Rule{}, nil, err
	}
	rp.warnFunc()
	return rp.r, rp.warns, nil
}

func (rp *ruleParser) token(t token) error {
	r := &rp.r
	if a := parseAction(t.s); a != ActionNone {
		if r.Action != ActionNone {
			return rp.errAt(t, "a rule has one action; this one already has %q", r.Action)
		}
		r.Action, rp.act = a, t
		return nil
	}
	if t.s == "permit_directio" {
		r.PermitDirectIO = true
		rp.note(cDirectIO, t)
		return nil
	}
	i := strings.IndexAny(t.s, "=<>")
	if i <= 0 {
		return rp.unknown(t)
	}
	key, op, val := t.s[:i], t.s[i], t.s[i+1:]
	if op != '=' {
		switch key {
		case "uid", "euid", "gid", "egid", "fowner", "fgroup":
		default:
			return rp.unknown(t)
		}
	}
	if !knownKey(key) {
		return rp.unknown(t)
	}
	if val == "" {
		// match_token's %s needs at least one character.
		return rp.errAt(t, "empty value")
	}
	switch key {
	case "func":
		if r.Func != FuncNone {
			return rp.errAt(t, "func given twice")
		}
		f, ok := parseFunc(val)
		if !ok {
			return rp.errAt(t, "unknown func %q", val)
		}
		r.Func = f
		rp.note(cFunc, t)
	case "mask":
		if r.Mask != 0 {
			return rp.errAt(t, "mask given twice")
		}
		v := val
		incl := strings.HasPrefix(v, "^")
		if incl {
			v = v[1:]
		}
		var m Mask
		switch v {
		case "MAY_EXEC":
			m = MayExec
		case "MAY_WRITE":
			m = MayWrite
		case "MAY_READ":
			m = MayRead
		case "MAY_APPEND":
			m = MayAppend
		default:
			return rp.errAt(t, "unknown mask %q (want MAY_EXEC, MAY_WRITE, MAY_READ or MAY_APPEND, optionally with ^)", val)
		}
		r.Mask, r.MaskIncludes = m, incl
		rp.note(cMask, t)
	case "fsmagic":
		// Kernel wins: the duplicate check is on the value (if
		// (entry->fsmagic)), so a first fsmagic=0 does not count.
		if r.FSMagic != 0 {
			return rp.errAt(t, "fsmagic given twice")
		}
		v, ok := kstrtoul(val, 16)
		if !ok {
			return rp.errAt(t, "fsmagic: want a hexadecimal number (0x optional)")
		}
		r.HasFSMagic, r.FSMagic = true, v
		rp.note(cFSMagic, t)
	case "fsname":
		// Kernel wins: fsname has no duplicate check; the last one counts.
		r.FSName = val
		rp.note(cFSName, t)
	case "fsuuid":
		// Kernel wins: the duplicate check is uuid_is_null on the value.
		if r.FSUUID != ([16]byte{}) {
			return rp.errAt(t, "fsuuid given twice")
		}
		u, ok := parseUUID(val)
		if !ok {
			return rp.errAt(t, "fsuuid: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
		}
		r.HasFSUUID, r.FSUUID = true, u
		rp.note(cFSUUID, t)
	case "uid", "euid", "gid", "egid", "fowner", "fgroup":
		return rp.idCond(t, key, op, val)
	case "obj_user", "obj_role", "obj_type", "subj_user", "subj_role", "subj_type":
		slot := 0
		for k, n := range lsmNames {
			if n == key {
				slot = k
			}
		}
		// The kernel rejects a second label for a slot when the first was
		// known to the LSM (ima_lsm_rule_init); labels are assumed known.
		if r.LSM[slot] != "" {
			return rp.errAt(t, "%s given twice", key)
		}
		r.LSM[slot] = val
		rp.note(cLSM, t)
	case "keyrings", "label":
		list, ok := splitOptList(val)
		if !ok {
			return rp.errAt(t, "%s: want names separated by '|', none empty", key)
		}
		if key == "keyrings" {
			if r.Keyrings != nil {
				return rp.errAt(t, "keyrings given twice")
			}
			r.Keyrings = list
			rp.note(cKeyrings, t)
		} else {
			if r.Labels != nil {
				return rp.errAt(t, "label given twice")
			}
			r.Labels = list
			rp.note(cLabel, t)
		}
	case "pcr":
		// Kernel wins: pcr= has no duplicate check; the last one counts.
		v, ok := kstrtoint(val)
		if !ok || v < 0 || v >= maxPCR {
			return rp.errAt(t, "pcr: want a decimal number from 0 to %d", maxPCR-1)
		}
		r.HasPCR, r.PCR = true, int(v)
		rp.note(cPCR, t)
	case "template":
		if r.Action != Measure {
			return rp.errAt(t, "template= must follow a measure action")
		}
		name, ok := lookupTemplate(val)
		if !ok {
			return rp.errAt(t, "unknown template %q (a built-in template name or format)", val)
		}
		if r.Template != "" {
			return rp.errAt(t, "template given twice")
		}
		r.Template = name
		rp.note(cTemplate, t)
	case "digest_type":
		// 7.1 dropped the check that digest_type follow no appraise_type.
		if val != "verity" {
			return rp.errAt(t, "digest_type: want verity")
		}
		r.Verity = true
		rp.note(cVerity, t)
	case "appraise_type":
		// Kernel wins: appraise_type has no duplicate check; the flags add up.
		switch val {
		case "imasig":
			if r.Verity {
				return rp.errAt(t, "appraise_type=imasig after digest_type=verity (use sigv3)")
			}
			r.DigSig = true
		case "sigv3":
			r.DigSig, r.SigV3 = true, true
			rp.note(cSigV3, t)
		case "imasig|modsig":
			if r.Verity || r.SigV3 {
				return rp.errAt(t, "appraise_type=imasig|modsig after digest_type=verity or appraise_type=sigv3")
			}
			r.DigSig, r.ModSig = true, true
			rp.note(cModSig, t)
		default:
			return rp.errAt(t, "appraise_type: want imasig, imasig|modsig or sigv3")
		}
		rp.note(cDigSig, t)
	case "appraise_flag":
		// Kernel wins: since the blacklist check became the default for
		// every signature, appraise_flag= is accepted with any value and
		// ignored (and not shown on read-back).
		rp.warns = append(rp.warns, Warning{Line: rp.line, Why: fmt.Sprintf("%s: deprecated, the kernel ignores it", t.s)})
	case "appraise_algos":
		if r.AppraiseAlgos != 0 {
			return rp.errAt(t, "appraise_algos given twice")
		}
		var set AlgoSet
		for _, name := range strings.Split(val, ",") {
			a, ok := hashAlgoByName(name)
			if !ok {
				return rp.errAt(t, "appraise_algos: unknown hash algorithm %q", name)
			}
			set |= 1 << a
		}
		r.AppraiseAlgos = set
		rp.note(cAlgos, t)
	}
	return nil
}

func (rp *ruleParser) idCond(t token, key string, op byte, val string) error {
	r := &rp.r
	var c *IDCond
	var kind int
	var shared bool // uid/euid and gid/egid share one slot in the kernel
	switch key {
	case "uid":
		c, kind, shared = &r.UID, cUID, r.UID.Set || r.EUID.Set
	case "euid":
		c, kind, shared = &r.EUID, cEUID, r.UID.Set || r.EUID.Set
	case "gid":
		c, kind, shared = &r.GID, cGID, r.GID.Set || r.EGID.Set
	case "egid":
		c, kind, shared = &r.EGID, cEGID, r.GID.Set || r.EGID.Set
	case "fowner":
		c, kind, shared = &r.FOwner, cFOwner, r.FOwner.Set
	case "fgroup":
		c, kind, shared = &r.FGroup, cFGroup, r.FGroup.Set
	}
	if shared {
		// Kernel wins: uid and euid (gid and egid) are one field of
		// ima_rule_entry, so a rule may name only one of them, once.
		switch key {
		case "uid", "euid":
			return rp.errAt(t, "a rule takes one of uid or euid, once")
		case "gid", "egid":
			return rp.errAt(t, "a rule takes one of gid or egid, once")
		}
		return rp.errAt(t, "%s given twice", key)
	}
	v, ok := kstrtoul(val, 10)
	// (uid_t)lnum != lnum, and (uid_t)-1 is INVALID_UID.
	if !ok || v >= 0xffffffff {
		return rp.errAt(t, "%s: want a decimal id below 4294967295", key)
	}
	o := OpEq
	switch op {
	case '<':
		o = OpLt
	case '>':
		o = OpGt
	}
	*c = IDCond{Set: true, Op: o, Value: uint32(v)}
	rp.note(kind, t)
	return nil
}

func parseAction(s string) Action {
	for a := Measure; a <= DontHash; a++ {
		if actionNames[a] == s {
			return a
		}
	}
	return ActionNone
}

func knownKey(k string) bool {
	switch k {
	case "func", "mask", "fsmagic", "fsname", "fsuuid", "uid", "euid", "gid", "egid",
		"fowner", "fgroup", "obj_user", "obj_role", "obj_type", "subj_user", "subj_role",
		"subj_type", "keyrings", "label", "pcr", "template", "digest_type", "appraise_type",
		"appraise_flag", "appraise_algos":
		return true
	}
	return false
}

func (rp *ruleParser) unknown(t token) error {
	switch {
	case t.s == "dont_audit":
		// Kernel wins: ima-spec.md lists dont_audit, but the kernel's
		// policy_tokens has no such action.
		return rp.errAt(t, "unknown token: the kernel has no dont_audit action")
	case strings.HasPrefix(t.s, "fs_subtype"):
		// Kernel wins: fs_subtype= is not in mainline policy_tokens.
		return rp.errAt(t, "unknown token: fs_subtype= is not a mainline condition")
	case strings.HasPrefix(t.s, "#"):
		// Kernel wins: only a line starting with '#' is a comment; a '#'
		// later in a rule is an unknown token to ima_parse_rule.
		return rp.errAt(t, "unknown token: a comment must start the line")
	}
	return rp.errAt(t, "unknown token")
}

func hashAlgoByName(s string) (ima.HashAlg, bool) {
	a, ok := ima.LookupHashAlg(s)
	return a, ok && a.Valid()
}

// splitOptList follows ima_alloc_rule_opt_list: '|'-separated, no empty item.
func splitOptList(s string) ([]string, bool) {
	n := strings.Count(s, "|") + 1
	if n > MaxLineLen {
		return nil, false
	}
	list := make([]string, 0, n)
	for _, it := range strings.Split(s, "|") {
		if it == "" {
			return nil, false
		}
		list = append(list, it)
	}
	return list, true
}

// kstrtoul follows the kernel's kstrtoul: an optional '+', for base 16 an
// optional 0x/0X, at least one digit, no overflow of 64 bits, nothing after.
func kstrtoul(s string, base uint64) (uint64, bool) {
	if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	return parseDigits(s, base)
}

func parseDigits(s string, base uint64) (uint64, bool) {
	if base == 16 && len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		if v > (^uint64(0)-d)/base {
			return 0, false
		}
		v = v*base + d
	}
	return v, true
}

// kstrtoint follows kstrtoint(s, 10): kstrtoll with a leading '-' or '+',
// then the int range.
func kstrtoint(s string) (int64, bool) {
	neg := false
	if strings.HasPrefix(s, "-") {
		neg = true
		s = s[1:]
	} else if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	v, ok := parseDigits(s, 10)
	if !ok {
		return 0, false
	}
	if neg {
		if v > 1<<31 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<31-1 {
		return 0, false
	}
	return int64(v), true
}

// parseUUID follows uuid_parse: uuid_is_valid looks at the first 36
// characters only (kernel wins: anything after them is ignored).
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) < 36 {
		return u, false
	}
	n := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return u, false
			}
			i++
			continue
		}
		hi, ok1 := hexVal(s[i])
		lo, ok2 := hexVal(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[n] = hi<<4 | lo
		n++
		i += 2
	}
	return u, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
