package appraise

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
	"github.com/imago-ima/imago/verify"
)

// Policy is a node's compiled policy: a Keylime runtime policy, keys for
// ima-sig entries, and the PCR the node's list extends. It is package
// verify's policy (the rules live there, once); safe for concurrent use.
type Policy struct {
	v *verify.Policy
}

// PolicyOptions are the rest of a node's policy.
type PolicyOptions struct {
	// PCR is the PCR the list extends: 10 for the kernel's IMA (0 means
	// 10), the agent's --pcr for an imago agent's list.
	PCR int `json:"pcr,omitempty"`
	// PolicyKey is the PEM public key a DSSE-enveloped runtime policy must
	// be signed with.
	PolicyKey []byte `json:"policy_key,omitempty"`
}

// ErrNeedsKey: the runtime policy is a DSSE envelope and no key was given.
var ErrNeedsKey = runtimepolicy.ErrNeedsKey

// CompilePolicy compiles a Keylime runtime policy (JSON, or a DSSE envelope
// checked with o.PolicyKey) and keyrings (PEM or DER certificates or public
// keys, Keylime's key formats).
func CompilePolicy(runtimePolicy []byte, keyrings [][]byte, o PolicyOptions) (*Policy, error) {
	var key any
	if len(o.PolicyKey) > 0 {
		k, err := runtimepolicy.ParseKey(o.PolicyKey)
		if err != nil {
			return nil, fmt.Errorf("appraise: policy key: %w", err)
		}
		key = k
	}
	rp, err := runtimepolicy.Compile(bytes.NewReader(runtimePolicy), runtimepolicy.Options{Key: key})
	if err != nil {
		return nil, fmt.Errorf("appraise: runtime policy: %w", err)
	}
	var keys []digsig.Key
	for i, kr := range keyrings {
		ks, err := parseKeys(kr)
		if err != nil {
			return nil, fmt.Errorf("appraise: keyring %d: %w", i, err)
		}
		keys = append(keys, ks...)
	}
	v, err := verify.NewPolicy(verify.Options{RuntimePolicy: rp, Keys: keys, PCR: o.PCR})
	if err != nil {
		return nil, fmt.Errorf("appraise: %w", err)
	}
	return &Policy{v: v}, nil
}

// PCR is the PCR the node's list extends.
func (p *Policy) PCR() int { return p.v.PCR() }

// parseKeys reads one keyring blob: DER, or every key and certificate of a
// PEM file.
func parseKeys(b []byte) ([]digsig.Key, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		k, err := digsig.ParseKey(b)
		if err != nil {
			return nil, err
		}
		return []digsig.Key{k}, nil
	}
	var out []digsig.Key
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		k, err := digsig.ParseKey(blk.Bytes)
		if errors.Is(err, digsig.ErrNotKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("PEM %s block: %w", blk.Type, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate or key")
	}
	return out, nil
}

// VerifyState is package verify's incremental state of the node's list.
type VerifyState = verify.State

// verifyEntries judges entries (the list from prev.Next on) with the
// policy's rules and replays them to the quoted PCRs; boot, if not nil,
// are the PCR values the firmware log replays to, for the boot aggregate.
// Without a log the boot aggregate is judged by the runtime policy alone.
func verifyEntries(p *Policy, prev VerifyState, entries []*ima.Entry, quoted, boot pcr.Set) ([]attest.Failure, VerifyState, error) {
	rep, next, err := p.v.Verify(&prev, verify.Round{Entries: verify.Entries(entries), Quoted: quoted, EventLog: boot})
	if err != nil {
		return nil, prev, err
	}
	out := make([]attest.Failure, 0, len(rep.Failures))
	for _, f := range rep.Failures {
		out = append(out, attest.Failure{Entry: int64(f.Entry), Path: f.Path, ID: f.ID, Detail: detail(f)})
	}
	return out, *next, nil
}

// detail says what verify found beside the id.
func detail(f verify.Failure) string {
	var parts []string
	if f.Message != "" {
		parts = append(parts, f.Message)
	}
	if len(f.Expected) > 0 {
		parts = append(parts, fmt.Sprintf("expected %s", strings.Join(f.Expected, " or ")))
	}
	if f.Got != "" {
		parts = append(parts, "got "+f.Got)
	}
	return strings.Join(parts, "; ")
}
