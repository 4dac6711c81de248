package verify

import (
	"bytes"
	"encoding/hex"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// Sources of an accepted boot aggregate.
const (
	SourcePolicy   = "policy"   // the policy's digests["boot_aggregate"]
	SourceEventLog = "eventlog" // PCR values replayed from the firmware event log
	SourcePCRs     = "pcrs"     // PCR values read from the TPM or quoted
)

// BootAggregateCandidate is one boot aggregate value a verifier accepts.
type BootAggregateCandidate struct {
	Source string
	Bank   pcr.Bank // 0 for a policy digest
	// Rule is "PCR0-7" or "PCR0-9" ("" for a policy digest).
	Rule   string
	Digest []byte
}

// BootAggregates returns the boot aggregates that PCR values allow: for
// every bank of set that imago can hash, H(PCR0..7) and H(PCR0..9), the
// values Keylime adds from a measured-boot log (tpm2_tools_elparser's
// boot_aggregates; a PCR the set lacks counts as zeros, its reset value).
// The SHA-1 PCR0-7 value is also what the legacy ima template's d field
// holds. source names where set came from (SourceEventLog, SourcePCRs).
func BootAggregates(source string, set pcr.Set) []BootAggregateCandidate {
	var out []BootAggregateCandidate
	for _, b := range set.Banks() {
		if !b.Known() {
			continue
		}
		for _, n := range []int{8, 10} {
			if d, ok := bootagg.Range(b, set, n); ok {
				rule := "PCR0-7"
				if n == 10 {
					rule = "PCR0-9"
				}
				out = append(out, BootAggregateCandidate{Source: source, Bank: b, Rule: rule, Digest: d})
			}
		}
	}
	return out
}

// BootAggregateResult is the verdict on a list's boot aggregate entry.
type BootAggregateResult struct {
	Entry int    `json:"entry"`
	Name  string `json:"name"` // boot_aggregate or boot_aggregate_late
	// Digest is the entry's "alg:hex".
	Digest string `json:"digest"`
	// Verdict is "pass", "fail", "unchecked" when nothing could judge it
	// (no policy digests, no event log, no PCR values), or "adopted": a
	// TPM-bypass aggregate (zeros) heading a list that the TPM holds,
	// which is a finding, not a failure (Rule says so, Note where the
	// evidence for the real boot aggregate is).
	Verdict string `json:"verdict"`
	// Source and Rule say what matched: SourcePolicy, SourceEventLog
	// (with the bank and rule) or SourcePCRs.
	Source string `json:"source,omitempty"`
	Bank   string `json:"bank,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// Late: the list began with boot_aggregate_late, the late-TPM start
	// (the aggregate was taken when the TPM appeared, after boot).
	Late bool `json:"late,omitempty"`
	// Excluded: the policy's exclude list matched the name.
	Excluded bool `json:"excluded,omitempty"`
	// Expected are the values accepted, in hex, when it failed.
	Expected []string `json:"expected,omitempty"`
	// Note explains a TPM-bypass aggregate (zeros): adopted by a late TPM,
	// or a list that nothing anchors.
	Note string `json:"note,omitempty"`
}

// Verdicts of a boot aggregate beside pass, fail and unchecked.
const VerdictAdopted = "adopted"

// Notes on a TPM-bypass boot aggregate (issue 11).
const (
	noteAdopted = "the kernel had no TPM at boot (zero boot aggregate), yet the TPM holds this list: " +
		"entries listed before the TPM appeared are only as trustworthy as the system was until then; " + bootagg.AdoptedEvidence
	noteBypass = "TPM-bypass: the kernel had no TPM at boot and extends nothing, and no quoted PCR shows a TPM holding this list " +
		"(imago agent --adopt-kernel-list extends such a list into a TPM that appears later)"
)

// IsBootAggregateName reports whether name is a boot aggregate entry's:
// boot_aggregate, or boot_aggregate_late for the late-TPM start.
func IsBootAggregateName(name []byte) bool {
	return string(name) == bootagg.Name || string(name) == bootagg.NameLate
}

// CheckBootAggregate judges a boot aggregate entry, the same rule for
// boot_aggregate and boot_aggregate_late: its digest must be one of the
// policy's digests["boot_aggregate"], or a value the event log's or the
// TPM's PCRs give (BootAggregates). A name the policy excludes passes.
// With nothing to judge by, the verdict is "unchecked" and no failure is
// returned; otherwise a failure carries Keylime's id (not_in_allowlist when
// nothing is accepted at all, runtime_policy_hash when the digest is not
// among the values). The attestation service calls it with the event-log
// replay of each boot's first round.
//
// The first entry of a list (index 0) with the TPM-bypass value (zeros,
// bootagg.IsBypass) follows bootagg.CheckBypass, as imago log check does:
// held says the TPM holds the list through this entry (its PCR replayed to
// the quoted value in every quoted bank). Held, it is a list adopted by a
// late TPM: the verdict is VerdictAdopted, with no failure (the evidence
// for the real boot aggregate is the adopter's own list, see Note). Not
// held, it is judged by the rule above and its Note says TPM-bypass.
func (p *Policy) CheckBootAggregate(index int, name string, d ima.Digest, eventLog, pcrs pcr.Set, held bool) (BootAggregateResult, *Failure) {
	p.wait()
	res := BootAggregateResult{Entry: index, Name: name, Digest: digestString(d), Late: name == bootagg.NameLate}
	if index == 0 && bootagg.IsBypass(d.Sum) {
		rule, err := bootagg.CheckBypass(name, d.Alg.String(), d.Sum, held)
		switch {
		case err == nil && rule == bootagg.RuleAdopted:
			res.Verdict, res.Rule, res.Note = VerdictAdopted, rule.String(), noteAdopted
			return res, nil
		case err == nil:
			res.Rule, res.Note = rule.String(), noteBypass
		}
	}
	var cands []BootAggregateCandidate
	listed := false
	if p.rp != nil {
		if ds, ok := p.rp.Digests([]byte(bootagg.Name)); ok {
			listed = true
			for _, h := range ds.Hex() {
				b, _ := hex.DecodeString(h)
				cands = append(cands, BootAggregateCandidate{Source: SourcePolicy, Digest: b})
			}
		}
		if p.rp.Excluded([]byte(name)) {
			res.Verdict, res.Excluded = "pass", true
			return res, nil
		}
	}
	cands = append(cands, BootAggregates(SourceEventLog, eventLog)...)
	cands = append(cands, BootAggregates(SourcePCRs, pcrs)...)
	if len(cands) == 0 && !listed {
		res.Verdict = "unchecked"
		if p.rp != nil {
			res.Verdict = "fail"
			return res, &Failure{Entry: index, Path: name, ID: IDNotInAllowlist, Got: hex.EncodeToString(d.Sum),
				Message: "no boot_aggregate in the policy, and no event log or PCR values to compute it from"}
		}
		return res, nil
	}
	// The legacy d field holds SHA-1(PCR0..7) or, on kernels whose boot
	// aggregate is another hash, that hash cut or padded to 20 bytes.
	for _, c := range cands {
		if bytes.Equal(c.Digest, d.Sum) {
			res.Verdict, res.Source = "pass", c.Source
			if c.Rule != "" {
				res.Rule = c.Rule
			}
			if c.Bank != 0 {
				res.Bank = c.Bank.String()
			}
			return res, nil
		}
	}
	res.Verdict = "fail"
	for _, c := range cands {
		res.Expected = append(res.Expected, hex.EncodeToString(c.Digest))
	}
	return res, &Failure{Entry: index, Path: name, ID: IDRuntimePolicyHash, Expected: res.Expected,
		Got: hex.EncodeToString(d.Sum), Message: "boot aggregate matches no accepted value"}
}

func digestString(d ima.Digest) string {
	if d.Alg == ima.HashSHA1 && len(d.Sum) == 20 {
		return "sha1:" + hex.EncodeToString(d.Sum)
	}
	return d.Alg.String() + ":" + hex.EncodeToString(d.Sum)
}
