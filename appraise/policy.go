package appraise

// This file is the one seam between a round and the runtime policy rules,
// which live in package verify. INTERIM: until verify lands, a minimal
// stand-in (replay per (PCR, bank) with the list-may-run-ahead rule, and a
// digest lookup in the Keylime policy's "digests") keeps the service
// testable; it is replaced by calls into verify, not extended.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// Policy is a compiled runtime policy with its keyrings; safe for
// concurrent use.
type Policy struct {
	digests map[string][]string
}

// CompilePolicy compiles a Keylime runtime policy and keyrings (PEM or DER
// certificates or keys for ima-sig entries).
func CompilePolicy(runtimePolicy []byte, keyrings [][]byte) (*Policy, error) {
	var p struct {
		Digests map[string][]string `json:"digests"`
	}
	if err := json.Unmarshal(runtimePolicy, &p); err != nil {
		return nil, fmt.Errorf("appraise: runtime policy: %w", err)
	}
	for k, v := range p.Digests {
		for i := range v {
			_, h, ok := strings.Cut(v[i], ":")
			if !ok {
				h = v[i]
			}
			v[i] = strings.ToLower(h)
		}
		p.Digests[k] = v
	}
	return &Policy{digests: p.Digests}, nil
}

// VerifyState is the policy's incremental state.
type VerifyState struct {
	// Next is the index of the next entry.
	Next uint64 `json:"next"`
	// PCRs are the running PCR values per bank the list has reached.
	PCRs pcr.Set `json:"pcrs,omitempty"`
	// BootAggregate says the boot aggregate was judged.
	BootAggregate bool `json:"boot_aggregate,omitempty"`
}

// verifyEntries judges entries (the list from prev.Next on) and replays
// them to the quoted PCRs; boot, if not nil, are the PCR values the
// firmware log replays to.
func verifyEntries(p *Policy, prev VerifyState, entries []*ima.Entry, quoted, boot pcr.Set) ([]attest.Failure, VerifyState, error) {
	var fails []attest.Failure
	run := make(pcr.Set)
	run.Merge(prev.PCRs)
	banks := quoted.Banks()
	touched := map[int]bool{}
	for _, m := range run {
		for i := range m {
			touched[i] = true
		}
	}
	matches := func() bool {
		for _, b := range banks {
			for i := range touched {
				q, ok := quoted.Get(b, i)
				if !ok {
					return false
				}
				r, ok := run.Get(b, i)
				if !ok {
					r = make([]byte, b.Size())
				}
				if !bytes.Equal(q, r) {
					return false
				}
			}
		}
		return true
	}
	last := -1
	if matches() {
		last = 0
	}
	bootJudged := prev.BootAggregate
	var pending []attest.Failure
	for k, e := range entries {
		idx := int64(prev.Next) + int64(k)
		touched[int(e.PCR)] = true
		for _, b := range banks {
			old, ok := run.Get(b, int(e.PCR))
			if !ok {
				old = make([]byte, b.Size())
			}
			d := e.TemplateDigest(b)
			if e.IsViolation() {
				d = bytes.Repeat([]byte{0xff}, b.Size())
			}
			run.Put(b, int(e.PCR), pcr.Extend(b, old, d))
		}
		name, _ := e.Name()
		if e.IsBootAggregate() && idx == 0 && boot != nil {
			dg, err := e.FileDigest()
			if err == nil {
				if _, err := bootagg.Check(name, dg.Alg.String(), dg.Sum, boot); err != nil {
					pending = append(pending, attest.Failure{Entry: idx, Path: name, ID: "ima.validation.boot_aggregate", Detail: err.Error()})
				}
			}
			bootJudged = true
		} else if !e.IsViolation() {
			dg, err := e.FileDigest()
			want, listed := p.digests[name]
			switch {
			case err != nil:
				pending = append(pending, attest.Failure{Entry: idx, Path: name, ID: "ima.parser.digest", Detail: err.Error()})
			case !listed:
				pending = append(pending, attest.Failure{Entry: idx, Path: name, ID: "ima.validation." + e.Template + ".not_in_allowlist"})
			case !slices.Contains(want, hex.EncodeToString(dg.Sum)):
				pending = append(pending, attest.Failure{Entry: idx, Path: name, ID: "ima.validation." + e.Template + ".runtime_policy_hash"})
			}
		}
		if matches() {
			last = k + 1
			fails = append(fails, pending...)
			pending = nil
		}
	}
	if last < 0 {
		return []attest.Failure{{Entry: -1, ID: "ima.pcr_mismatch", Detail: "the list replays to no quoted PCR value"}}, prev, nil
	}
	// Replay again up to last to keep the state at the matching entry.
	next := VerifyState{Next: prev.Next + uint64(last), PCRs: make(pcr.Set), BootAggregate: bootJudged}
	next.PCRs.Merge(prev.PCRs)
	for _, e := range entries[:last] {
		for _, b := range banks {
			old, ok := next.PCRs.Get(b, int(e.PCR))
			if !ok {
				old = make([]byte, b.Size())
			}
			d := e.TemplateDigest(b)
			if e.IsViolation() {
				d = bytes.Repeat([]byte{0xff}, b.Size())
			}
			next.PCRs.Put(b, int(e.PCR), pcr.Extend(b, old, d))
		}
	}
	return fails, next, nil
}
