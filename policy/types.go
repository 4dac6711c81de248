package policy

import (
	"strconv"

	"github.com/imago-ima/imago/ima"
)

// Action is a rule's action keyword (ima-spec.md §8.2).
type Action uint8

// The actions, in the kernel's policy_tokens order.
const (
	ActionNone Action = iota
	Measure
	DontMeasure
	Appraise
	DontAppraise
	Audit
	Hash
	DontHash
)

var actionNames = [...]string{
	ActionNone:   "",
	Measure:      "measure",
	DontMeasure:  "dont_measure",
	Appraise:     "appraise",
	DontAppraise: "dont_appraise",
	Audit:        "audit",
	Hash:         "hash",
	DontHash:     "dont_hash",
}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// pair returns the action pair an action decides (§8.5): 0 measure, 1
// appraise, 2 audit, 3 hash.
func (a Action) pair() int {
	switch a {
	case Measure, DontMeasure:
		return 0
	case Appraise, DontAppraise:
		return 1
	case Audit:
		return 2
	case Hash, DontHash:
		return 3
	}
	return -1
}

// Func is the hook a rule applies to (func=, §8.7). The values follow the
// kernel's enum ima_hooks, so the numbers are the ones the kernel prints for
// an unknown func.
type Func uint8

// The hooks of enum ima_hooks (security/integrity/ima/ima.h).
const (
	FuncNone Func = iota
	FileCheck
	MmapCheck
	MmapCheckReqprot
	BprmCheck
	CredsCheck
	PostSetattr
	ModuleCheck
	FirmwareCheck
	KexecKernelCheck
	KexecInitramfsCheck
	PolicyCheck
	KexecCmdline
	KeyCheck
	CriticalData
	SetxattrCheck
	maxCheck
)

var funcNames = [...]string{
	FuncNone:            "NONE",
	FileCheck:           "FILE_CHECK",
	MmapCheck:           "MMAP_CHECK",
	MmapCheckReqprot:    "MMAP_CHECK_REQPROT",
	BprmCheck:           "BPRM_CHECK",
	CredsCheck:          "CREDS_CHECK",
	PostSetattr:         "POST_SETATTR",
	ModuleCheck:         "MODULE_CHECK",
	FirmwareCheck:       "FIRMWARE_CHECK",
	KexecKernelCheck:    "KEXEC_KERNEL_CHECK",
	KexecInitramfsCheck: "KEXEC_INITRAMFS_CHECK",
	PolicyCheck:         "POLICY_CHECK",
	KexecCmdline:        "KEXEC_CMDLINE",
	KeyCheck:            "KEY_CHECK",
	CriticalData:        "CRITICAL_DATA",
	SetxattrCheck:       "SETXATTR_CHECK",
}

// String returns the name the kernel prints (func_tokens), or the number.
func (f Func) String() string {
	if f > FuncNone && f < maxCheck {
		return funcNames[f]
	}
	return strconv.Itoa(int(f))
}

// parseFunc maps a func= value to its hook, with the kernel's aliases
// PATH_CHECK (FILE_CHECK) and FILE_MMAP (MMAP_CHECK). POST_SETATTR and NONE
// are internal and not accepted (ima_parse_rule, Opt_func).
func parseFunc(s string) (Func, bool) {
	switch s {
	case "PATH_CHECK":
		return FileCheck, true
	case "FILE_MMAP":
		return MmapCheck, true
	case "NONE", "POST_SETATTR":
		return 0, false
	}
	for f := FileCheck; f < maxCheck; f++ {
		if funcNames[f] == s {
			return f, true
		}
	}
	return 0, false
}

// Mask is a set of MAY_* access bits (include/linux/fs.h).
type Mask uint8

// The access bits a policy can name.
const (
	MayExec   Mask = 1
	MayWrite  Mask = 2
	MayRead   Mask = 4
	MayAppend Mask = 8
)

// Op is the comparison of an id condition.
type Op uint8

// The id comparisons: uid=, uid<, uid>.
const (
	OpEq Op = iota
	OpLt
	OpGt
)

func (o Op) String() string {
	switch o {
	case OpLt:
		return "<"
	case OpGt:
		return ">"
	}
	return "="
}

func (o Op) holds(have, want uint32) bool {
	switch o {
	case OpLt:
		return have < want
	case OpGt:
		return have > want
	}
	return have == want
}

// IDCond is a uid/euid/gid/egid/fowner/fgroup condition.
type IDCond struct {
	Set   bool
	Op    Op
	Value uint32
}

// LSM condition slots, in the kernel's lsm_rule_types order (which is also
// the read-back order).
const (
	ObjUser = iota
	ObjRole
	ObjType
	SubjUser
	SubjRole
	SubjType
	numLSM
)

var lsmNames = [numLSM]string{"obj_user", "obj_role", "obj_type", "subj_user", "subj_role", "subj_type"}

// AlgoSet is a bitfield of allowed hash algorithms (appraise_algos=), bit i
// for id i, as the kernel's allowed_algos. Zero means no restriction.
type AlgoSet uint32

// Has reports whether the set allows algorithm a.
func (s AlgoSet) Has(a ima.HashAlg) bool { return a < 32 && s&(1<<a) != 0 }

// lookupTemplate finds a built-in template by name or format, as
// lookup_template_desc does, and returns its name.
func lookupTemplate(s string) (string, bool) {
	t, ok := ima.LookupBuiltinTemplate(s)
	if !ok {
		return "", false
	}
	return t.Name, true
}

// Rule is one parsed policy rule. The zero value of each condition means
// "absent". Two rules that the kernel would print the same compare equal
// with reflect.DeepEqual once Line is cleared.
type Rule struct {
	Line int // 1-based line in the source; for built-in rules, the line in Format

	Action Action
	Func   Func // FuncNone: any hook

	Mask         Mask // 0: any
	MaskIncludes bool // mask=^M: the requested mask includes M

	HasFSMagic bool
	FSMagic    uint64
	FSName     string // "": any
	HasFSUUID  bool
	FSUUID     [16]byte

	UID, EUID, GID, EGID, FOwner, FGroup IDCond

	LSM [numLSM]string // obj_user..subj_type; "": absent

	Keyrings []string // KEY_CHECK keyrings=a|b; nil: any
	Labels   []string // CRITICAL_DATA label=a|b; nil: any

	HasPCR bool
	PCR    int

	Template string // template name; "": the default

	DigSig         bool    // appraise_type=imasig (IMA_DIGSIG_REQUIRED)
	ModSig         bool    // appraise_type=imasig|modsig (IMA_MODSIG_ALLOWED)
	SigV3          bool    // appraise_type=sigv3 (IMA_SIGV3_REQUIRED)
	Verity         bool    // digest_type=verity (IMA_VERITY_REQUIRED)
	PermitDirectIO bool    // permit_directio
	AppraiseAlgos  AlgoSet // appraise_algos=; 0: absent
}

// Warning is a rule the kernel accepts but a fanotify agent cannot honour as
// the kernel would, or a token the kernel ignores.
type Warning struct {
	Line int
	Func Func
	Why  string
}

func (w Warning) String() string {
	s := "line " + strconv.Itoa(w.Line)
	if w.Func != FuncNone {
		s += ": func=" + w.Func.String()
	}
	return s + ": " + w.Why
}

// Policy is an ordered rule set plus the boot-time fail_securely flag.
type Policy struct {
	Rules []Rule
	// FailSecurely is ima_policy=fail_securely: every appraise decision
	// also fails unverifiable signatures (IMA_FAIL_UNVERIFIABLE_SIGS, §8.5).
	FailSecurely bool

	warnings []Warning
}

// Warnings returns one warning per rule a fanotify agent cannot see (and per
// ignored token), in line order.
func (p *Policy) Warnings() []Warning { return p.warnings }
