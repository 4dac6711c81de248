package policy

import "fmt"

// condSet is a set of condition kinds (bit c for kind c).
type condSet uint32

func kinds(cs ...int) condSet {
	var s condSet
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// The conditions each func group allows, from ima_validate_rule (the flag
// masks of its switch on entry->func). LSM conditions and template= are not
// flags there, so they pass except where the kernel checks them explicitly.
var (
	// NONE, FILE_CHECK, MMAP_CHECK, MMAP_CHECK_REQPROT, BPRM_CHECK,
	// CREDS_CHECK, POST_SETATTR, FIRMWARE_CHECK, POLICY_CHECK.
	allowFile = kinds(cFunc, cMask, cFSMagic, cUID, cFOwner, cFSUUID, cEUID, cPCR, cFSName,
		cGID, cEGID, cFGroup, cDigSig, cDirectIO, cAlgos, cVerity, cSigV3, cLSM, cTemplate)
	// MODULE_CHECK, KEXEC_KERNEL_CHECK, KEXEC_INITRAMFS_CHECK: appended
	// signatures, no fs-verity, no sigv3 (until the fix queued for 7.2).
	allowModule = kinds(cFunc, cMask, cFSMagic, cUID, cFOwner, cFSUUID, cEUID, cPCR, cFSName,
		cGID, cEGID, cFGroup, cDigSig, cDirectIO, cModSig, cAlgos, cLSM, cTemplate)
	// KEXEC_CMDLINE. Kernel wins over ima-spec §8.4: LSM conditions are not
	// checked for this func, so they are accepted.
	allowCmdline = kinds(cFunc, cFSMagic, cUID, cFOwner, cFSUUID, cEUID, cPCR, cFSName,
		cGID, cEGID, cFGroup, cLSM, cTemplate)
	allowKey      = kinds(cFunc, cUID, cGID, cPCR, cKeyrings, cTemplate)
	allowCritical = kinds(cFunc, cUID, cGID, cPCR, cLabel, cTemplate)
	// SETXATTR_CHECK: only appraise_algos (LSM conditions are not flags, so
	// the kernel lets them through).
	allowSetxattr = kinds(cFunc, cAlgos, cLSM)
)

// validate follows ima_validate_rule. first is the rule's first token, for
// errors about the rule as a whole.
func (rp *ruleParser) validate(first token) error {
	r := &rp.r
	if r.Action == ActionNone {
		return rp.errAt(token{col: first.col}, "no action: a rule starts with measure, dont_measure, appraise, dont_appraise, audit, hash or dont_hash")
	}
	if r.Action != Measure && r.HasPCR {
		return rp.errAt(rp.at[cPCR], "pcr= is only for measure rules")
	}
	if r.Action != Appraise {
		for _, c := range []int{cDigSig, cAlgos} {
			if rp.at[c].col != 0 {
				return rp.errAt(rp.at[c], "%s is only for appraise rules", condNames[c])
			}
		}
	}
	var allow condSet
	switch r.Func {
	case FuncNone, FileCheck, MmapCheck, MmapCheckReqprot, BprmCheck, CredsCheck, PostSetattr, FirmwareCheck, PolicyCheck:
		allow = allowFile
	case ModuleCheck, KexecKernelCheck, KexecInitramfsCheck:
		allow = allowModule
	case KexecCmdline, KeyCheck, CriticalData:
		if r.Action != Measure && r.Action != DontMeasure {
			return rp.errAt(rp.act, "func=%s takes only measure or dont_measure", r.Func)
		}
		switch r.Func {
		case KexecCmdline:
			allow = allowCmdline
		case KeyCheck:
			allow = allowKey
		default:
			allow = allowCritical
		}
	case SetxattrCheck:
		if r.Action != Appraise {
			return rp.errAt(rp.act, "func=SETXATTR_CHECK takes only appraise")
		}
		if r.AppraiseAlgos == 0 {
			return rp.errAt(rp.at[cFunc], "func=SETXATTR_CHECK needs appraise_algos=")
		}
		allow = allowSetxattr
	default:
		return rp.errAt(rp.at[cFunc], "func not allowed in a policy")
	}
	bad := -1
	for c := 0; c < nCond; c++ {
		if rp.at[c].col == 0 || allow&(1<<c) != 0 {
			continue
		}
		if bad < 0 || rp.at[c].col < rp.at[bad].col {
			bad = c
		}
	}
	if bad >= 0 {
		f := "a rule without func="
		if r.Func != FuncNone {
			f = "func=" + r.Func.String()
		}
		return rp.errAt(rp.at[bad], "%s is not allowed with %s", condNames[bad], f)
	}
	// fs-verity appraisal needs a signature (IMA_VERITY_REQUIRED without
	// IMA_DIGSIG_REQUIRED).
	if r.Action == Appraise && r.Verity && !r.DigSig {
		return rp.errAt(rp.at[cVerity], "appraise with digest_type=verity needs appraise_type=sigv3")
	}
	return nil
}

// warnFunc records one warning for a rule whose hook a fanotify agent cannot
// observe: it sees only opens (FILE_CHECK) and execs (BPRM_CHECK).
func (rp *ruleParser) warnFunc() {
	var why string
	switch f := rp.r.Func; f {
	case FuncNone, FileCheck, BprmCheck:
		return
	case MmapCheck, MmapCheckReqprot:
		why = "mmap with PROT_EXEC raises no fanotify event; the agent never applies this rule"
	case CredsCheck:
		why = "exec with the new credentials is not a separate fanotify event; the agent never applies this rule"
	case ModuleCheck, FirmwareCheck, KexecKernelCheck, KexecInitramfsCheck, PolicyCheck:
		why = "a kernel-internal file read (module, firmware, kexec image, policy) is not a fanotify event; the agent never applies this rule"
	case KexecCmdline, KeyCheck, CriticalData:
		why = "a kernel buffer, not a file: only the kernel can measure it; the agent never applies this rule"
	case SetxattrCheck:
		why = "restricts the algorithms written to security.ima by setxattr, which the agent does not see"
	default:
		why = fmt.Sprintf("func %d is not observable", f)
	}
	rp.warns = append(rp.warns, Warning{Line: rp.line, Func: rp.r.Func, Why: why})
}
