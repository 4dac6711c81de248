package agent

import (
	"fmt"
	"strings"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/fsfacts"
	"github.com/imago-ima/imago/policy"
)

// The gate's pure side: the facts an event carries, the policy's verdict,
// and the adapter from package policy (ima-spec.md §8.3, §8.5).

// Hook is the IMA hook an event stands for (ima-spec.md §8.7).
type Hook uint8

const (
	// HookBPRM: FAN_OPEN_EXEC_PERM, func=BPRM_CHECK, mask MAY_EXEC.
	HookBPRM Hook = iota + 1
	// HookFile: FAN_OPEN_PERM, func=FILE_CHECK, mask from the open flags.
	HookFile
)

func (h Hook) String() string {
	if h == HookBPRM {
		return "BPRM_CHECK"
	}
	return "FILE_CHECK"
}

// Facts are what a policy rule's conditions test (ima-spec.md §8.3),
// gathered at the edge for one event. Fields a policy does not need
// (GatePolicy.Needs) are left zero.
type Facts struct {
	Hook Hook
	// Mask is the access asked for (MAY_* bits, fsfacts.Access). For
	// FILE_CHECK it is recovered from the opener's system call; when that
	// fails it is MAY_READ and MaskKnown is false.
	Mask      fsfacts.Access
	MaskKnown bool
	FS        fsfacts.FS
	// FOwner, FGroup are the file's owner and group.
	FOwner, FGroup uint32
	// Cred is the opener's credentials (uid=, euid=, gid=, egid=).
	Cred fsfacts.Cred
	// SubjLabel is the opener's LSM label, ObjLabel the file's.
	SubjLabel, ObjLabel string
}

// Needs says which facts a policy tests, so the edge reads only those.
type Needs struct {
	FS, Cred, Labels bool
	// Opens: the policy has rules for FILE_CHECK (or for any hook): the
	// gate then watches every open, not only execs.
	Opens bool
	// Measure: the policy has a measure rule, which turns the violation
	// checks on (ima_rdwr_violation_check runs when a measure policy is
	// loaded, ima-spec.md §5.1).
	Measure bool
	// Appraise: the policy has an appraise rule.
	Appraise bool
	// ExecCacheable: the decision for an exec depends on nothing but the
	// file's content and filesystem: no rule that can apply to
	// BPRM_CHECK appraises or tests the process, the owner or a label. The
	// kernel can then be asked to stop reporting a measured file's execs
	// until it is modified (gate.Event.Ignore).
	ExecCacheable bool
}

// Verdict is a policy decision for one event: the first matching rule of
// each action pair (ima-spec.md §8.5).
type Verdict struct {
	Measure bool
	// PCR is the measure rule's pcr= (0: the agent's PCR); Template its
	// template= ("" : the agent's template).
	PCR      int
	Template string
	Appraise bool
	// Require is what the appraise rule demands of security.ima.
	Require digsig.Requirements
}

// GatePolicy evaluates a policy for the gate. It must be safe for
// concurrent use and must not do I/O.
type GatePolicy interface {
	Evaluate(f *Facts) Verdict
	Needs() Needs
	// Wants says which facts the rules that can match an event of this
	// hook and mask test: the others need not be read (reading a process's
	// credentials costs more than the rest of a cached decision).
	Wants(hook Hook, mask fsfacts.Access) Wants
	// FileCheckInert reports that no FILE_CHECK open of a file on a
	// filesystem with these facts can be measured or appraised, whoever
	// opens it, with whatever mask, owner or labels: every rule for
	// FILE_CHECK that could apply is a dont_ rule decided by the
	// filesystem alone, or no rule applies. Such opens also never lead to
	// a violation: ima_rdwr_violation_check sets IMA_MUST_MEASURE, which
	// ToMToU needs, and sends open_writers, only for an open a measure
	// rule matches (ima-spec.md §5.1).
	FileCheckInert(fs fsfacts.FS) bool
}

// Wants are the facts worth reading for one event.
type Wants struct{ FS, Cred, Labels bool }

// AppraiseMode is ima_appraise=.
type AppraiseMode uint8

const (
	// AppraiseEnforce: a failed appraisal answers FAN_DENY.
	AppraiseEnforce AppraiseMode = iota
	// AppraiseLog: failures are logged, access is allowed.
	AppraiseLog
	// AppraiseFix: failures are logged, access is allowed, and a file
	// without a signature gets its digest-ng hash written (ima_fix_xattr).
	AppraiseFix
	// AppraiseOff: appraise rules are ignored.
	AppraiseOff
)

// ParseAppraiseMode parses enforce, log, fix or off.
func ParseAppraiseMode(s string) (AppraiseMode, error) {
	switch s {
	case "enforce":
		return AppraiseEnforce, nil
	case "log":
		return AppraiseLog, nil
	case "fix":
		return AppraiseFix, nil
	case "off":
		return AppraiseOff, nil
	}
	return 0, fmt.Errorf("agent: appraise mode %q: want enforce, log, fix or off", s)
}

func (m AppraiseMode) String() string {
	return [...]string{"enforce", "log", "fix", "off"}[m]
}

// policyGate adapts a *policy.Policy to GatePolicy.
type policyGate struct {
	p     *policy.Policy
	needs Needs
}

// NewGatePolicy evaluates p for the gate. It reads the rules once to learn
// which facts they test.
func NewGatePolicy(p *policy.Policy) GatePolicy {
	n := Needs{ExecCacheable: true}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Func == policy.FuncNone || r.Func == policy.BprmCheck {
			subject := r.UID.Set || r.EUID.Set || r.GID.Set || r.EGID.Set || r.FOwner.Set || r.FGroup.Set
			for _, l := range r.LSM {
				subject = subject || l != ""
			}
			if subject || r.Action == policy.Appraise {
				n.ExecCacheable = false
			}
		}
		if r.HasFSMagic || r.HasFSUUID || r.FSName != "" {
			n.FS = true
		}
		if r.UID.Set || r.EUID.Set || r.GID.Set || r.EGID.Set {
			n.Cred = true
		}
		for _, l := range r.LSM {
			if l != "" {
				n.Labels = true
			}
		}
		if r.Func == policy.FuncNone || r.Func == policy.FileCheck {
			n.Opens = true
		}
		switch r.Action {
		case policy.Measure:
			n.Measure = true
		case policy.Appraise:
			n.Appraise = true
		}
	}
	return &policyGate{p: p, needs: n}
}

func (g *policyGate) Needs() Needs { return g.needs }

func (g *policyGate) Wants(hook Hook, mask fsfacts.Access) Wants {
	fn := policy.FileCheck
	if hook == HookBPRM {
		fn = policy.BprmCheck
	}
	m := policy.Mask(mask)
	var w Wants
	for i := range g.p.Rules {
		r := &g.p.Rules[i]
		if r.Func != policy.FuncNone && r.Func != fn {
			continue
		}
		if r.Mask != 0 && (r.MaskIncludes && r.Mask&m == 0 || !r.MaskIncludes && r.Mask != m) {
			continue // this rule cannot match, whatever the other facts
		}
		w.FS = w.FS || r.HasFSMagic || r.HasFSUUID || r.FSName != ""
		w.Cred = w.Cred || r.UID.Set || r.EUID.Set || r.GID.Set || r.EGID.Set
		for _, l := range r.LSM {
			w.Labels = w.Labels || l != ""
		}
	}
	return w
}

func (g *policyGate) FileCheckInert(fs fsfacts.FS) bool {
	// The first matching rule of each action pair decides (ima-spec.md
	// §8.5); the measure and appraise pairs must both end in "no" for
	// every possible process.
	var decided [2]bool // measure, appraise
	for i := range g.p.Rules {
		r := &g.p.Rules[i]
		if r.Func != policy.FuncNone && r.Func != policy.FileCheck {
			continue
		}
		var pair int
		switch r.Action {
		case policy.Measure, policy.DontMeasure:
			pair = 0
		case policy.Appraise, policy.DontAppraise:
			pair = 1
		default:
			continue
		}
		if decided[pair] {
			continue
		}
		// The filesystem's conditions are known: a rule they exclude
		// never applies to this filesystem.
		if r.HasFSMagic && r.FSMagic != fs.Magic || r.HasFSUUID && r.FSUUID != fs.UUID ||
			r.FSName != "" && r.FSName != fs.Name {
			continue
		}
		if r.Action == policy.Measure || r.Action == policy.Appraise {
			return false // it may apply to some open
		}
		// A dont_ rule decides its pair for every open only when nothing
		// but the filesystem is tested (the process, the mask, the owner
		// and the labels vary from open to open, or change without a
		// write).
		other := r.Mask != 0 || r.UID.Set || r.EUID.Set || r.GID.Set || r.EGID.Set || r.FOwner.Set || r.FGroup.Set
		for _, l := range r.LSM {
			other = other || l != ""
		}
		if !other {
			decided[pair] = true
		}
	}
	return true
}

func (g *policyGate) Evaluate(f *Facts) Verdict {
	d := g.p.Evaluate(PolicyEvent(f))
	v := Verdict{Measure: d.Measure, Template: d.Template, Appraise: d.Appraise,
		Require: digsig.Requirements{Signature: d.DigSigRequired, SigV3: d.SigV3Required, Verity: d.VerityRequired}}
	if d.HasPCR {
		v.PCR = d.PCR
	}
	for a := ima.HashAlg(0); a.Valid(); a++ {
		if d.AppraiseAlgos.Has(a) {
			v.Require.AllowedAlgos = append(v.Require.AllowedAlgos, a)
		}
	}
	return v
}

// PolicyEvent is the policy.Event of an event's facts.
func PolicyEvent(f *Facts) policy.Event {
	ev := policy.Event{Func: policy.FileCheck, Mask: policy.Mask(f.Mask),
		FSMagic: f.FS.Magic, FSUUID: f.FS.UUID, FSName: f.FS.Name,
		UID: f.Cred.UID, EUID: f.Cred.EUID, SUID: f.Cred.SUID,
		GID: f.Cred.GID, EGID: f.Cred.EGID, SGID: f.Cred.SGID,
		CapSetUID: f.Cred.CapEff&(1<<fsfacts.CapSetUID) != 0,
		CapSetGID: f.Cred.CapEff&(1<<fsfacts.CapSetGID) != 0,
		FOwner:    f.FOwner, FGroup: f.FGroup,
		Subj: lsmLabels(f.SubjLabel), Obj: lsmLabels(f.ObjLabel)}
	if f.Hook == HookBPRM {
		ev.Func = policy.BprmCheck
	}
	return ev
}

// lsmLabels splits an SELinux context user:role:type[:level]. Other LSMs'
// labels give empty fields, which no subj_/obj_ condition matches.
func lsmLabels(s string) policy.Labels {
	p := strings.SplitN(s, ":", 4)
	if len(p) < 3 {
		return policy.Labels{}
	}
	return policy.Labels{User: p[0], Role: p[1], Type: p[2]}
}

// LoadGatePolicy reads --policy: a built-in name (tcb, appraise_tcb, ...,
// '|'-separated) or a policy file. The warnings are the rules the gate
// cannot see (module, firmware, kexec, keys, mmap).
func LoadGatePolicy(arg string, read func(string) ([]byte, error)) (GatePolicy, []policy.Warning, error) {
	var (
		p   *policy.Policy
		err error
	)
	if policy.IsBuiltin(arg) {
		p, err = policy.Builtin(arg)
	} else {
		var data []byte
		if data, err = read(arg); err != nil {
			return nil, nil, fmt.Errorf("agent: policy: %w", err)
		}
		p, err = policy.ParseBytes(data)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("agent: policy %s: %w", arg, err)
	}
	return NewGatePolicy(p), p.Warnings(), nil
}
