package bootagg

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/imago-ima/imago/pcr"
)

// Rule names how a boot aggregate was computed.
type Rule uint8

const (
	// RuleSHA1 is the SHA-1 bank rule, SHA-1(PCR0 || ... || PCR7), used by
	// every kernel for the SHA-1 bank and for the legacy d field (§6.2, §6.3).
	RuleSHA1 Rule = iota + 1
	// RulePCR0to9 is the rule for every other bank since Linux 5.8:
	// H(PCR0 || ... || PCR9) (§6.2).
	RulePCR0to9
	// RulePre58 is the rule for other banks before Linux 5.8: H(PCR0..7)
	// (ima-evm-utils test_ascii_runtime_measurements, MANIFEST rule 7).
	RulePre58
	// RuleNoTPM is the TPM-bypass aggregate: all zeros (§6.4).
	RuleNoTPM
	// RuleNoSHA1Bank is the legacy d field of a TPM without a SHA-1 bank: 20
	// zero bytes (§6.3).
	RuleNoSHA1Bank
	// RuleAdopted is a TPM-bypass aggregate (zeros) heading a list that the
	// TPM holds nevertheless: adopted by a late TPM (CheckBypass).
	RuleAdopted
)

// String names the rule: "sha1 PCR0-7", "PCR0-9", "pre-5.8 PCR0-7", "no TPM
// (zeros)", "no sha1 bank (zeros)".
func (r Rule) String() string {
	switch r {
	case RuleSHA1:
		return "sha1 PCR0-7"
	case RulePCR0to9:
		return "PCR0-9"
	case RulePre58:
		return "pre-5.8 PCR0-7"
	case RuleNoTPM:
		return "no TPM (zeros)"
	case RuleNoSHA1Bank:
		return "no sha1 bank (zeros)"
	case RuleAdopted:
		return Adopted
	}
	return fmt.Sprintf("rule(%d)", uint8(r))
}

// Names of the first list entry (§6.1; boot_aggregate_late: §9.2).
const (
	Name     = "boot_aggregate"
	NameLate = "boot_aggregate_late"
)

// ErrNoBank reports that the PCR set has no values for the bank a check
// needs: the aggregate could not be checked.
var ErrNoBank = errors.New("bootagg: no PCR values for the bank")

// ErrNotBootAggregate reports an entry whose name is neither boot_aggregate
// nor boot_aggregate_late.
var ErrNotBootAggregate = errors.New("bootagg: entry is not a boot aggregate")

// Range returns H_b(PCR0 || ... || PCR(n-1)) over bank b of set. A PCR
// absent from the set counts as zeros, its reset value: an event-log replay
// (eventlog.Replay) lists only PCRs that had events, and PCRs 0-9 start at
// zeros (PCR 0's locality is part of the replayed value). A set read from a
// TPM has every PCR. It returns false if the set has no value at all for b or
// b is a bank imago cannot compute.
func Range(b pcr.Bank, set pcr.Set, n int) ([]byte, bool) {
	if len(set[b]) == 0 || !b.Known() {
		return nil, false
	}
	h := b.New()
	zero := make([]byte, b.Size())
	for i := range n {
		if v, ok := set.Get(b, i); ok {
			h.Write(v)
		} else {
			h.Write(zero)
		}
	}
	return h.Sum(nil), true
}

// Aggregate returns the boot aggregate a current kernel computes from bank b
// (§6.2): SHA-1(PCR0..7) for SHA-1, H_b(PCR0..9) for any other bank. See
// Range for absent PCRs.
func Aggregate(b pcr.Bank, set pcr.Set) ([]byte, bool) {
	if b == pcr.SHA1 {
		return Range(b, set, 8)
	}
	return Range(b, set, 10)
}

// Pre58 returns the aggregate a kernel before 5.8 computed from a non-SHA-1
// bank: H_b(PCR0..7).
func Pre58(b pcr.Bank, set pcr.Set) ([]byte, bool) { return Range(b, set, 8) }

// LegacySHA1 returns the legacy d field's boot aggregate (§6.3) given the
// TPM's PCRs: SHA-1(PCR0..7) of the SHA-1 bank, or 20 zero bytes if the set
// has no SHA-1 bank (the kernel's value when the TPM has none).
func LegacySHA1(set pcr.Set) []byte {
	if d, ok := Range(pcr.SHA1, set, 8); ok {
		return d
	}
	return make([]byte, 20)
}

// Compute returns, for every bank of set that imago can compute, the
// aggregate a current kernel records for it (Aggregate), as `evmctl
// ima_boot_aggregate` prints it per bank.
func Compute(set pcr.Set) map[pcr.Bank][]byte {
	out := make(map[pcr.Bank][]byte)
	for _, b := range set.Banks() {
		if d, ok := Aggregate(b, set); ok {
			out[b] = d
		}
	}
	return out
}

// Value is one candidate boot aggregate: the bank, the rule and the digest.
type Value struct {
	Bank   pcr.Bank
	Rule   Rule
	Digest []byte
}

// String prints "<alg>:<hex> (<rule>)", alg being the bank's kernel name or
// "d" for the legacy field (Bank 0).
func (v Value) String() string {
	alg := "d"
	if v.Bank != 0 {
		alg = v.Bank.KernelName()
	}
	return fmt.Sprintf("%s:%x (%s)", alg, v.Digest, v.Rule)
}

// Candidates returns every value a kernel may have recorded from set: per
// bank, the current rule, and for non-SHA-1 banks also the pre-5.8 rule.
func Candidates(set pcr.Set) []Value {
	var out []Value
	for _, b := range set.Banks() {
		if b == pcr.SHA1 {
			if d, ok := Range(b, set, 8); ok {
				out = append(out, Value{b, RuleSHA1, d})
			}
			continue
		}
		if d, ok := Range(b, set, 10); ok {
			out = append(out, Value{b, RulePCR0to9, d})
		}
		if d, ok := Range(b, set, 8); ok {
			out = append(out, Value{b, RulePre58, d})
		}
	}
	return out
}

// Choose returns the bank the kernel takes the boot aggregate from (§6.2),
// given the TPM's allocated banks in TPM order and ima_hash_algo as a kernel
// crypto name (sha1, sha256, sm3, md5, ...): the first bank whose hash is
// imaHash; else the last SHA-256 bank; else the first SHA-1 bank. It returns
// false if none fits: the kernel then records imaHash with an all-zero
// digest.
func Choose(banks []pcr.Bank, imaHash string) (pcr.Bank, bool) {
	var chosen pcr.Bank
	found := false
	for _, b := range banks {
		if b.Known() && b.KernelName() == imaHash {
			return b, true
		}
		switch {
		case b == pcr.SHA256:
			chosen, found = b, true
		case b == pcr.SHA1 && !found:
			chosen, found = b, true
		}
	}
	return chosen, found
}

// kernelHashSize is the digest size of the kernel hash algorithms
// ima_hash= accepts (ima-spec.md §1.1).
var kernelHashSize = map[string]int{
	"md4": 16, "md5": 16, "sha1": 20, "rmd160": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64,
	"wp256": 32, "wp384": 48, "wp512": 64, "tgr128": 16, "tgr160": 20, "tgr192": 24, "sm3": 32,
	"streebog256": 32, "streebog512": 64,
}

// Kernel returns what a current kernel records as the boot aggregate's d-ng
// digest (§6.2): with banks the TPM's allocated banks in TPM order, imaHash
// the ima_hash_algo kernel name and set the TPM's PCRs. alg is the kernel
// name of the digest's algorithm. If no bank fits, or the set lacks the
// chosen bank, the digest is zeros of imaHash's size (ok false if imaHash is
// unknown). For TPM-bypass (no TPM), use NoTPM.
func Kernel(banks []pcr.Bank, imaHash string, set pcr.Set) (alg string, digest []byte, ok bool) {
	if b, found := Choose(banks, imaHash); found {
		if d, ok := Aggregate(b, set); ok {
			return b.KernelName(), d, true
		}
	}
	return NoTPM(imaHash)
}

// KernelLegacy returns what the kernel records in the legacy d field
// (template "ima"; §6.3): the modern digest if its algorithm is SHA-1 or MD5
// (zero-padded to 20 bytes), else SHA-1(PCR0..7) if the TPM has a SHA-1 bank,
// else 20 zero bytes.
func KernelLegacy(banks []pcr.Bank, imaHash string, set pcr.Set) []byte {
	alg, d, _ := Kernel(banks, imaHash, set)
	if alg == "sha1" || alg == "md5" {
		out := make([]byte, 20)
		copy(out, d)
		return out
	}
	if slices.Contains(banks, pcr.SHA1) {
		if d, ok := Range(pcr.SHA1, set, 8); ok {
			return d
		}
	}
	return make([]byte, 20)
}

// NoTPM returns the TPM-bypass boot aggregate (§6.4): imaHash with an
// all-zero digest of its size. ok is false for an unknown algorithm name.
func NoTPM(imaHash string) (alg string, digest []byte, ok bool) {
	n, ok := kernelHashSize[imaHash]
	return imaHash, make([]byte, n), ok
}

// MismatchError reports a boot aggregate that no rule reproduces from the
// PCRs: the entry's value and every candidate computed.
type MismatchError struct {
	Name string // entry name
	Alg  string // the entry's algorithm ("" for the legacy d field)
	Got  []byte
	Want []Value
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	alg := e.Alg
	if alg == "" {
		alg = "d"
	}
	fmt.Fprintf(&b, "bootagg: %s %s:%x matches no rule", e.Name, alg, e.Got)
	for i, w := range e.Want {
		if i == 0 {
			b.WriteString(": want ")
		} else {
			b.WriteString(" or ")
		}
		b.WriteString(w.String())
	}
	return b.String()
}

// Check checks a measurement list's boot aggregate entry against the TPM's
// PCRs (from a TPM read or an event-log replay). name must be boot_aggregate
// or boot_aggregate_late. alg is the d-ng / d-ngv2 algorithm ("sha256",
// "sha1", "sm3", ...), or "" for the legacy d field's 20 bytes. It returns
// the rule that reproduced digest:
//
//   - alg "sha1": RuleSHA1;
//   - other algs: RulePCR0to9, else RulePre58, over the bank of that name;
//   - legacy d: RuleSHA1 over the SHA-1 bank, or RuleNoSHA1Bank if set has no
//     SHA-1 bank but other banks and digest is 20 zero bytes.
//
// If no rule matches, the error is a *MismatchError listing every candidate.
// If set has no values for the needed bank the error wraps ErrNoBank. An
// all-zero digest is never accepted here (except RuleNoSHA1Bank): use
// CheckNoTPM for a boot without TPM.
func Check(name, alg string, digest []byte, set pcr.Set) (Rule, error) {
	if name != Name && name != NameLate {
		return 0, fmt.Errorf("%w: %q", ErrNotBootAggregate, name)
	}
	mismatch := func(want ...Value) error {
		return &MismatchError{Name: name, Alg: alg, Got: bytes.Clone(digest), Want: want}
	}
	if alg == "" {
		if d, ok := Range(pcr.SHA1, set, 8); ok {
			if bytes.Equal(d, digest) {
				return RuleSHA1, nil
			}
			return 0, mismatch(Value{pcr.SHA1, RuleSHA1, d})
		}
		if len(set) == 0 {
			return 0, fmt.Errorf("%w sha1 (legacy d field)", ErrNoBank)
		}
		z := make([]byte, 20)
		if bytes.Equal(digest, z) {
			return RuleNoSHA1Bank, nil
		}
		return 0, mismatch(Value{pcr.SHA1, RuleNoSHA1Bank, z})
	}
	b, err := pcr.ParseBank(alg)
	if err != nil || !b.Known() {
		return 0, fmt.Errorf("%w %q: no TPM bank for that algorithm", ErrNoBank, alg)
	}
	if _, ok := Range(b, set, 8); !ok {
		return 0, fmt.Errorf("%w %s", ErrNoBank, b)
	}
	var want []Value
	for _, v := range Candidates(set) {
		if v.Bank != b {
			continue
		}
		if bytes.Equal(v.Digest, digest) {
			return v.Rule, nil
		}
		want = append(want, v)
	}
	return 0, mismatch(want...)
}

// CheckNoTPM checks a boot aggregate entry of a boot without TPM (§6.4): the
// digest must be all zeros, of alg's size when alg is a known kernel hash
// name (20 bytes for the legacy d field, alg ""). It returns RuleNoTPM, or a
// *MismatchError.
func CheckNoTPM(name, alg string, digest []byte) (Rule, error) {
	if name != Name && name != NameLate {
		return 0, fmt.Errorf("%w: %q", ErrNotBootAggregate, name)
	}
	n := len(digest)
	if alg == "" {
		n = 20
	} else if k, ok := kernelHashSize[alg]; ok {
		n = k
	}
	if len(digest) == n && !slices.ContainsFunc(digest, func(c byte) bool { return c != 0 }) {
		return RuleNoTPM, nil
	}
	b, _ := pcr.ParseBank(alg)
	return 0, &MismatchError{Name: name, Alg: alg, Got: bytes.Clone(digest), Want: []Value{{b, RuleNoTPM, make([]byte, n)}}}
}
