package policy

import (
	"fmt"
	"strings"
)

// Filesystem magics of the built-in rules (include/uapi/linux/magic.h).
const (
	ProcSuperMagic   = 0x9fa0
	SysfsMagic       = 0x62656572
	DebugfsMagic     = 0x64626720
	TmpfsMagic       = 0x01021994
	RamfsMagic       = 0x858458f6
	DevptsSuperMagic = 0x1cd1
	BinfmtfsMagic    = 0x42494e4d
	SecurityfsMagic  = 0x73636673
	SelinuxMagic     = 0xf97cff8c
	SmackMagic       = 0x43415d53
	CgroupSuperMagic = 0x27e0eb
	Cgroup2Magic     = 0x63677270
	NsfsMagic        = 0x6e736673
	EfivarfsMagic    = 0xde5e81e4
)

// BuiltinNames are the names Builtin accepts: the ima_policy= values, and
// ima_tcb / ima_appraise_tcb (the legacy boolean boot parameters).
var BuiltinNames = []string{"tcb", "appraise_tcb", "secure_boot", "critical_data", "fail_securely", "ima_tcb", "ima_appraise_tcb"}

// BuiltinConfig holds the build options that change the built-in rules.
type BuiltinConfig struct {
	// WritePolicy is CONFIG_IMA_WRITE_POLICY: appraise_tcb then also
	// requires a signed policy (appraise func=POLICY_CHECK appraise_type=imasig).
	WritePolicy bool
	// SignedInit is CONFIG_IMA_APPRAISE_SIGNED_INIT: appraise_tcb's fowner=0
	// rule requires a signature.
	SignedInit bool
}

// IsBuiltin reports whether name is one of BuiltinNames, or several of them
// separated by '|' or spaces as ima_policy= takes them.
func IsBuiltin(name string) bool {
	ok := false
	for _, n := range splitBuiltin(name) {
		if !isBuiltinName(n) {
			return false
		}
		ok = true
	}
	return ok
}

func isBuiltinName(n string) bool {
	for _, b := range BuiltinNames {
		if n == b {
			return true
		}
	}
	return false
}

func splitBuiltin(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ' ' || r == '\n' })
}

// Builtin assembles the built-in policies named (each may itself be a
// '|'-separated list, as ima_policy= takes them) with the default build
// options; see BuiltinWith.
func Builtin(names ...string) (*Policy, error) {
	return BuiltinWith(BuiltinConfig{}, names...)
}

// BuiltinWith assembles the named built-in policies in the kernel's boot
// order (ima_init_policy, ima-spec.md §8.6): the dont_measure block and the
// measurement rules of tcb (or the original ima_tcb, whichever is named
// first), then secure_boot, then appraise_tcb, then critical_data.
// fail_securely sets Policy.FailSecurely. The architecture rules and the
// CONFIG_IMA_APPRAISE_REQUIRE_*_SIGS rules depend on the platform and the
// build and are not included. The rules follow mainline ima_policy.c,
// including the 2025 change that limits the tmpfs dont_measure rule to
// FILE_CHECK.
func BuiltinWith(cfg BuiltinConfig, names ...string) (*Policy, error) {
	tcb := ""
	var appraiseTCB, secureBoot, critical, failSecurely bool
	for _, arg := range names {
		for _, n := range splitBuiltin(arg) {
			switch n {
			case "tcb", "ima_tcb":
				if tcb == "" {
					tcb = n
				}
			case "appraise_tcb", "ima_appraise_tcb":
				appraiseTCB = true
			case "secure_boot":
				secureBoot = true
			case "critical_data":
				critical = true
			case "fail_securely":
				failSecurely = true
			default:
				return nil, fmt.Errorf("policy %q not found (want %s)", n, strings.Join(BuiltinNames, ", "))
			}
		}
	}
	p := &Policy{FailSecurely: failSecurely}
	add := func(rs ...Rule) { p.Rules = append(p.Rules, rs...) }
	fs := func(a Action, magic uint64) Rule { return Rule{Action: a, HasFSMagic: true, FSMagic: magic} }
	fn := func(a Action, f Func) Rule { return Rule{Action: a, Func: f} }
	root := IDCond{Set: true}
	if tcb != "" {
		// dont_measure_rules[]
		tmpfs := fs(DontMeasure, TmpfsMagic)
		tmpfs.Func = FileCheck
		add(fs(DontMeasure, ProcSuperMagic), fs(DontMeasure, SysfsMagic), fs(DontMeasure, DebugfsMagic),
			tmpfs, fs(DontMeasure, DevptsSuperMagic), fs(DontMeasure, BinfmtfsMagic),
			fs(DontMeasure, SecurityfsMagic), fs(DontMeasure, SelinuxMagic), fs(DontMeasure, SmackMagic),
			fs(DontMeasure, CgroupSuperMagic), fs(DontMeasure, Cgroup2Magic), fs(DontMeasure, NsfsMagic),
			fs(DontMeasure, EfivarfsMagic))
		mmap := Rule{Action: Measure, Func: MmapCheck, Mask: MayExec}
		bprm := Rule{Action: Measure, Func: BprmCheck, Mask: MayExec}
		if tcb == "ima_tcb" {
			// original_measurement_rules[]
			add(mmap, bprm, Rule{Action: Measure, Func: FileCheck, Mask: MayRead, UID: root},
				fn(Measure, ModuleCheck), fn(Measure, FirmwareCheck))
		} else {
			// default_measurement_rules[]
			add(mmap, bprm,
				Rule{Action: Measure, Func: FileCheck, Mask: MayRead, MaskIncludes: true, EUID: root},
				Rule{Action: Measure, Func: FileCheck, Mask: MayRead, MaskIncludes: true, UID: root},
				fn(Measure, ModuleCheck), fn(Measure, FirmwareCheck), fn(Measure, PolicyCheck))
		}
	}
	sig := func(f Func) Rule { r := fn(Appraise, f); r.DigSig = true; return r }
	if secureBoot {
		// secure_boot_rules[]
		add(sig(ModuleCheck), sig(FirmwareCheck), sig(KexecKernelCheck), sig(PolicyCheck))
	}
	if appraiseTCB {
		// default_appraise_rules[]
		add(fs(DontAppraise, ProcSuperMagic), fs(DontAppraise, SysfsMagic), fs(DontAppraise, DebugfsMagic),
			fs(DontAppraise, TmpfsMagic), fs(DontAppraise, RamfsMagic), fs(DontAppraise, DevptsSuperMagic),
			fs(DontAppraise, BinfmtfsMagic), fs(DontAppraise, SecurityfsMagic), fs(DontAppraise, SelinuxMagic),
			fs(DontAppraise, SmackMagic), fs(DontAppraise, NsfsMagic), fs(DontAppraise, EfivarfsMagic),
			fs(DontAppraise, CgroupSuperMagic), fs(DontAppraise, Cgroup2Magic))
		if cfg.WritePolicy {
			add(sig(PolicyCheck))
		}
		add(Rule{Action: Appraise, FOwner: root, DigSig: cfg.SignedInit})
	}
	if critical {
		// critical_data_rules[]
		add(fn(Measure, CriticalData))
	}
	for i := range p.Rules {
		// A built-in rule's Line is its line in the read-back (Format).
		p.Rules[i].Line = i + 1
		rp := ruleParser{r: p.Rules[i], line: i + 1}
		rp.warnFunc()
		p.warnings = append(p.warnings, rp.warns...)
	}
	return p, nil
}
