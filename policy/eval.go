package policy

// Labels are the LSM context fields of a subject (task) or object (inode),
// as the LSM reports them (for SELinux: user, role, type). An empty field is
// unknown: a rule that names it never matches (ima-spec.md §8.3).
type Labels struct {
	User, Role, Type string
}

// Event carries the facts of one hook call, read at the edge by the caller
// (statfs, the fd's owner, /proc/PID/status, the LSM).
type Event struct {
	Func Func // the hook: BprmCheck for FAN_OPEN_EXEC_PERM, FileCheck for FAN_OPEN_PERM
	Mask Mask // the requested access: MayExec for exec, the open's MAY_* bits for an open

	FSMagic uint64   // statfs f_type of the file's filesystem
	FSUUID  [16]byte // the superblock uuid (zero if the filesystem has none)
	FSName  string   // the filesystem type name (/proc/self/mountinfo)

	UID, EUID, SUID uint32 // the task's real, effective and saved uid
	GID, EGID, SGID uint32 // the same for groups
	// CapSetUID and CapSetGID: the task holds CAP_SETUID / CAP_SETGID, so
	// euid= (egid=) conditions also try its saved and real ids.
	CapSetUID, CapSetGID bool

	FOwner, FGroup uint32 // the inode's owner and group, through the mount's idmap

	Subj, Obj Labels // LSM labels of the task and of the inode

	Keyring string // KEY_CHECK: the keyring name
	Label   string // CRITICAL_DATA: the event label
}

// Decision is what a policy says about an event (the kernel's action word
// from ima_match_policy, spelled out).
type Decision struct {
	Measure, Appraise, Audit, Hash bool

	// HasPCR and PCR: the measure rule's pcr= (else the caller's default,
	// CONFIG_IMA_MEASURE_PCR_IDX, usually 10).
	HasPCR bool
	PCR    int
	// Template: the measure rule's template= name, "" for the default.
	Template string

	// Flags ORed from every matching rule (IMA_NONACTION_FLAGS).
	DigSigRequired bool // a signature is required (appraise_type=); since 6.x this also means the blacklist check (IMA_CHECK_BLACKLIST)
	ModSigAllowed  bool // an appended signature is accepted
	SigV3Required  bool // only a v3 signature is accepted
	VerityRequired bool // the fs-verity digest, not the file hash
	PermitDirectIO bool

	// FailUnverifiableSigs: fail_securely and an appraise rule matched.
	FailUnverifiableSigs bool
	// AppraiseAlgos: the matching appraise rule's appraise_algos=; 0: any.
	AppraiseAlgos AlgoSet
}

// Evaluate walks the rules in order as ima_match_policy does (ima-spec.md
// §8.5): each action pair (measure, appraise, audit, hash) is decided by the
// first matching rule for it, positive or "dont"; flags are ORed from every
// matching rule; a matching appraise rule clears hash. It allocates nothing.
func (p *Policy) Evaluate(ev Event) Decision {
	var d Decision
	var decided [4]bool
	left := 4
	for i := range p.Rules {
		r := &p.Rules[i]
		pair := r.Action.pair()
		if pair < 0 || decided[pair] || r.Func == SetxattrCheck {
			// SETXATTR_CHECK rules are never matched against a hook
			// (ima_update_policy_flags keeps them apart); see SetxattrAlgos.
			continue
		}
		if !r.matches(&ev) {
			continue
		}
		d.DigSigRequired = d.DigSigRequired || r.DigSig
		d.ModSigAllowed = d.ModSigAllowed || r.ModSig
		d.SigV3Required = d.SigV3Required || r.SigV3
		d.VerityRequired = d.VerityRequired || r.Verity
		d.PermitDirectIO = d.PermitDirectIO || r.PermitDirectIO
		switch r.Action {
		case Measure:
			d.Measure = true
		case Appraise:
			d.Appraise = true
			d.Hash = false
			if p.FailSecurely {
				d.FailUnverifiableSigs = true
			}
			if r.AppraiseAlgos != 0 {
				d.AppraiseAlgos = r.AppraiseAlgos
			}
		case Audit:
			d.Audit = true
		case Hash:
			d.Hash = true
		}
		decided[pair] = true
		left--
		if r.HasPCR {
			d.HasPCR, d.PCR = true, r.PCR
		}
		if r.Template != "" {
			d.Template = r.Template
		}
		if left == 0 {
			break
		}
	}
	return d
}

// SetxattrAlgos returns the algorithms the first SETXATTR_CHECK rule allows
// to be written into security.ima; only that rule takes effect
// (ima_update_policy_flags). ok is false without such a rule.
func (p *Policy) SetxattrAlgos() (algos AlgoSet, ok bool) {
	for i := range p.Rules {
		if p.Rules[i].Func == SetxattrCheck {
			return p.Rules[i].AppraiseAlgos, true
		}
	}
	return 0, false
}

// matches follows ima_match_rules.
func (r *Rule) matches(ev *Event) bool {
	if r.Func != FuncNone && r.Func != ev.Func && ev.Func != PostSetattr {
		return false
	}
	if ev.Func == KeyCheck || ev.Func == CriticalData {
		// Only rules naming the func match, on uid and the list only.
		return r.Func == ev.Func && r.matchData(ev)
	}
	if r.Mask != 0 && ev.Func != PostSetattr {
		if r.MaskIncludes {
			if r.Mask&ev.Mask == 0 {
				return false
			}
		} else if r.Mask != ev.Mask {
			return false
		}
	}
	if r.HasFSMagic && r.FSMagic != ev.FSMagic {
		return false
	}
	if r.FSName != "" && r.FSName != ev.FSName {
		return false
	}
	if r.HasFSUUID && r.FSUUID != ev.FSUUID {
		return false
	}
	if r.UID.Set && !r.UID.Op.holds(ev.UID, r.UID.Value) {
		return false
	}
	if c := r.EUID; c.Set {
		if ev.CapSetUID {
			if !c.Op.holds(ev.EUID, c.Value) && !c.Op.holds(ev.SUID, c.Value) && !c.Op.holds(ev.UID, c.Value) {
				return false
			}
		} else if !c.Op.holds(ev.EUID, c.Value) {
			return false
		}
	}
	if r.GID.Set && !r.GID.Op.holds(ev.GID, r.GID.Value) {
		return false
	}
	if c := r.EGID; c.Set {
		if ev.CapSetGID {
			if !c.Op.holds(ev.EGID, c.Value) && !c.Op.holds(ev.SGID, c.Value) && !c.Op.holds(ev.GID, c.Value) {
				return false
			}
		} else if !c.Op.holds(ev.EGID, c.Value) {
			return false
		}
	}
	if r.FOwner.Set && !r.FOwner.Op.holds(ev.FOwner, r.FOwner.Value) {
		return false
	}
	if r.FGroup.Set && !r.FGroup.Op.holds(ev.FGroup, r.FGroup.Value) {
		return false
	}
	for i, want := range r.LSM {
		if want == "" {
			continue
		}
		var have string
		switch i {
		case ObjUser:
			have = ev.Obj.User
		case ObjRole:
			have = ev.Obj.Role
		case ObjType:
			have = ev.Obj.Type
		case SubjUser:
			have = ev.Subj.User
		case SubjRole:
			have = ev.Subj.Role
		case SubjType:
			have = ev.Subj.Type
		}
		if have == "" || have != want {
			return false
		}
	}
	return true
}

// matchData follows ima_match_rule_data. Kernel wins: gid= is accepted on
// KEY_CHECK and CRITICAL_DATA rules but never checked.
func (r *Rule) matchData(ev *Event) bool {
	if r.UID.Set && !r.UID.Op.holds(ev.UID, r.UID.Value) {
		return false
	}
	list, data := r.Keyrings, ev.Keyring
	if r.Func == CriticalData {
		list, data = r.Labels, ev.Label
	}
	if list == nil {
		return true
	}
	if data == "" {
		return false
	}
	for _, s := range list {
		if s == data {
			return true
		}
	}
	return false
}
