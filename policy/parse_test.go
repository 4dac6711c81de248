package policy

import (
	"errors"
	"strings"
	"testing"
)

// Accepted rules and how the kernel reads them back. Each expectation is
// written from security/integrity/ima/ima_policy.c: the token table
// (policy_tokens), the value parsers in ima_parse_rule, and the token order
// and trailing spaces of ima_policy_show.
var acceptCases = []struct {
	in, out string
	basis   string
}{
	// actions (policy_tokens; show prints the action then one space)
	{"measure", "measure ", "Opt_measure"},
	{"dont_measure", "dont_measure ", "Opt_dont_measure"},
	{"appraise", "appraise ", "Opt_appraise"},
	{"dont_appraise", "dont_appraise ", "Opt_dont_appraise"},
	{"audit", "audit ", "Opt_audit"},
	{"hash", "hash ", "Opt_hash"},
	{"dont_hash", "dont_hash ", "Opt_dont_hash"},
	// func: every name, aliases print as func_tokens[] names
	{"measure func=FILE_CHECK", "measure func=FILE_CHECK ", "Opt_func"},
	{"measure func=PATH_CHECK", "measure func=FILE_CHECK ", "PATH_CHECK is for backwards compat"},
	{"measure func=FILE_MMAP", "measure func=MMAP_CHECK ", "FILE_MMAP alias"},
	{"measure func=MMAP_CHECK", "measure func=MMAP_CHECK ", "Opt_func"},
	{"measure func=MMAP_CHECK_REQPROT", "measure func=MMAP_CHECK_REQPROT ", "Opt_func"},
	{"measure func=BPRM_CHECK", "measure func=BPRM_CHECK ", "Opt_func"},
	{"measure func=CREDS_CHECK", "measure func=CREDS_CHECK ", "Opt_func"},
	{"measure func=MODULE_CHECK", "measure func=MODULE_CHECK ", "Opt_func"},
	{"measure func=FIRMWARE_CHECK", "measure func=FIRMWARE_CHECK ", "Opt_func"},
	{"measure func=KEXEC_KERNEL_CHECK", "measure func=KEXEC_KERNEL_CHECK ", "Opt_func"},
	{"measure func=KEXEC_INITRAMFS_CHECK", "measure func=KEXEC_INITRAMFS_CHECK ", "Opt_func"},
	{"measure func=POLICY_CHECK", "measure func=POLICY_CHECK ", "Opt_func"},
	{"measure func=KEXEC_CMDLINE", "measure func=KEXEC_CMDLINE ", "Opt_func"},
	{"measure func=KEY_CHECK", "measure func=KEY_CHECK ", "Opt_func (CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS)"},
	{"measure func=CRITICAL_DATA", "measure func=CRITICAL_DATA ", "Opt_func"},
	{"appraise func=SETXATTR_CHECK appraise_algos=sha256", "appraise func=SETXATTR_CHECK appraise_algos=sha256 ", "SETXATTR_CHECK needs appraise_algos"},
	// mask: exact prints without ^ (offset 1 into mask_tokens), ^ with
	{"measure mask=MAY_EXEC", "measure mask=MAY_EXEC ", "IMA_MASK"},
	{"measure mask=MAY_WRITE", "measure mask=MAY_WRITE ", "IMA_MASK"},
	{"measure mask=MAY_READ", "measure mask=MAY_READ ", "IMA_MASK"},
	{"measure mask=MAY_APPEND", "measure mask=MAY_APPEND ", "IMA_MASK"},
	{"measure mask=^MAY_READ", "measure mask=^MAY_READ ", "IMA_INMASK"},
	{"measure mask=^MAY_EXEC", "measure mask=^MAY_EXEC ", "IMA_INMASK"},
	// fsmagic: kstrtoul base 16, 0x optional, printed 0x%lx
	{"dont_measure fsmagic=0x9fa0", "dont_measure fsmagic=0x9fa0 ", "kstrtoul(,16)"},
	{"dont_measure fsmagic=9FA0", "dont_measure fsmagic=0x9fa0 ", "0x optional, hex digits any case"},
	{"dont_measure fsmagic=0x01021994", "dont_measure fsmagic=0x1021994 ", "leading zero (fixture policy.txt)"},
	{"dont_measure fsmagic=+0X10", "dont_measure fsmagic=0x10 ", "kstrtoull skips '+'"},
	{"dont_measure fsmagic=0 fsmagic=5", "dont_measure fsmagic=0x5 ", "duplicate check is on the value (if (entry->fsmagic))"},
	// fsname: no duplicate check, last wins; show cuts at 63 bytes
	{"measure fsname=ext4", "measure fsname=ext4 ", "Opt_fsname"},
	{"measure fsname=ext4 fsname=xfs", "measure fsname=xfs ", "no duplicate check"},
	{"measure fsname=" + strings.Repeat("a", 70), "measure fsname=" + strings.Repeat("a", 63) + " ", "snprintf into tbuf[64]"},
	// fsuuid: uuid_parse, %pU lower case
	{"measure fsuuid=6A7B8C9D-0E1F-2A3B-4C5D-6E7F8A9B0C1D", "measure fsuuid=6a7b8c9d-0e1f-2a3b-4c5d-6e7f8a9b0c1d ", "uuid_parse, %pU"},
	{"measure fsuuid=6a7b8c9d-0e1f-2a3b-4c5d-6e7f8a9b0c1dzz", "measure fsuuid=6a7b8c9d-0e1f-2a3b-4c5d-6e7f8a9b0c1d ", "uuid_is_valid reads 36 chars only"},
	// ids: =, <, >; printed with %d
	{"measure uid=0", "measure uid=0 ", "Opt_uid_eq"},
	{"measure uid<1000", "measure uid<1000 ", "Opt_uid_lt"},
	{"measure uid>1000", "measure uid>1000 ", "Opt_uid_gt"},
	{"measure euid=0", "measure euid=0 ", "Opt_euid_eq"},
	{"measure euid<5", "measure euid<5 ", "Opt_euid_lt"},
	{"measure euid>5", "measure euid>5 ", "Opt_euid_gt"},
	{"measure gid=0", "measure gid=0 ", "Opt_gid_eq"},
	{"measure gid<5", "measure gid<5 ", "Opt_gid_lt"},
	{"measure egid>5", "measure egid>5 ", "Opt_egid_gt"},
	{"measure fowner=1234", "measure fowner=1234 ", "Opt_fowner_eq"},
	{"measure fowner<1000", "measure fowner<1000 ", "Opt_fowner_lt"},
	{"measure fgroup>10", "measure fgroup>10 ", "Opt_fgroup_gt"},
	{"measure uid=+7", "measure uid=7 ", "kstrtoul skips '+'"},
	{"measure uid=3000000000", "measure uid=-1294967296 ", "show prints __kuid_val with %d"},
	{"measure uid=0 gid=0 fowner=0 fgroup=0", "measure uid=0 gid=0 fowner=0 fgroup=0 ", "separate slots"},
	// LSM: show order obj_user..subj_type
	{"measure subj_type=b obj_user=u obj_role=r obj_type=t subj_user=su subj_role=sr",
		"measure obj_user=u obj_role=r obj_type=t subj_user=su subj_role=sr subj_type=b ", "lsm[] order"},
	// keyrings / label
	{"measure func=KEY_CHECK keyrings=.ima|.builtin_trusted_keys", "measure func=KEY_CHECK keyrings=.ima|.builtin_trusted_keys ", "ima_alloc_rule_opt_list"},
	{"measure func=CRITICAL_DATA label=selinux|kernel_info", "measure func=CRITICAL_DATA label=selinux|kernel_info ", "Opt_label"},
	{"measure func=KEY_CHECK uid=0 gid=0 pcr=11 keyrings=k", "measure func=KEY_CHECK keyrings=k pcr=11 uid=0 gid=0 ", "KEY_CHECK allowed flags"},
	// pcr: kstrtoint, 0..63, no duplicate check
	{"measure pcr=0", "measure pcr=0 ", "INVALID_PCR"},
	{"measure pcr=63", "measure pcr=63 ", "INVALID_PCR: bits in unsigned long"},
	{"measure pcr=+05", "measure pcr=5 ", "kstrtoint"},
	{"measure pcr=1 pcr=2", "measure pcr=2 ", "no duplicate check"},
	// template: name or fmt, after measure
	{"measure template=ima-sig", "measure template=ima-sig ", "lookup_template_desc by name"},
	{"measure template=d-ng|n-ng|buf", "measure template=ima-buf ", "lookup_template_desc by fmt"},
	{"measure func=KEY_CHECK template=ima-buf", "measure func=KEY_CHECK template=ima-buf ", "fixture h-ima-buf"},
	// appraise_type / digest_type / appraise_flag / appraise_algos / permit_directio
	{"appraise appraise_type=imasig", "appraise appraise_type=imasig ", "IMA_DIGSIG_REQUIRED"},
	{"appraise func=MODULE_CHECK appraise_type=imasig|modsig", "appraise func=MODULE_CHECK appraise_type=imasig|modsig ", "IMA_MODSIG_ALLOWED, module group"},
	{"appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig", "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig ", "kexec group"},
	{"appraise func=BPRM_CHECK appraise_type=sigv3", "appraise func=BPRM_CHECK appraise_type=sigv3 ", "7.1: sigv3 for regular files"},
	{"appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3", "appraise func=BPRM_CHECK appraise_type=sigv3 digest_type=verity ", "show: appraise_type before digest_type"},
	{"appraise appraise_type=imasig digest_type=verity", "appraise appraise_type=imasig digest_type=verity ", "7.1 dropped the digest_type-after-DIGSIG check"},
	{"measure digest_type=verity", "measure digest_type=verity ", "verity on measure: d-ngv2"},
	{"appraise appraise_type=sigv3 appraise_type=imasig", "appraise appraise_type=sigv3 ", "no duplicate check, flags add up"},
	{"appraise appraise_type=imasig appraise_flag=check_blacklist", "appraise appraise_type=imasig ", "appraise_flag accepted and ignored"},
	{"measure appraise_flag=anything", "measure ", "appraise_flag sets no flag any more"},
	{"appraise appraise_algos=sha256,sha1", "appraise appraise_algos=sha1,sha256 ", "bitfield printed in hash_algo order"},
	{"appraise appraise_algos=sha3-512,sm3,md4", "appraise appraise_algos=md4,sm3,sha3-512 ", "hash_algo_name"},
	{"measure permit_directio permit_directio", "measure permit_directio ", "flag, repeatable"},
	// whitespace: spaces and tabs (strsep " \t")
	{"\t measure\t\tfunc=BPRM_CHECK   mask=MAY_EXEC\t", "measure func=BPRM_CHECK mask=MAY_EXEC ", "strsep(&rule, \" \\t\")"},
	// full show order
	{"measure permit_directio template=ima-ng subj_type=t fgroup=1 fowner=2 egid=3 euid=4 fsuuid=00000000-0000-0000-0000-000000000001 pcr=9 fsname=ext4 fsmagic=ef53 mask=^MAY_READ func=FILE_CHECK",
		"measure func=FILE_CHECK mask=^MAY_READ fsmagic=0xef53 fsname=ext4 pcr=9 fsuuid=00000000-0000-0000-0000-000000000001 euid=4 egid=3 fowner=2 fgroup=1 subj_type=t template=ima-ng permit_directio ",
		"ima_policy_show order"},
}

func TestParseAccept(t *testing.T) {
	for _, c := range acceptCases {
		p, err := ParseBytes([]byte(c.in + "\n"))
		if err != nil {
			t.Errorf("%q (%s): %v", c.in, c.basis, err)
			continue
		}
		if got := p.Format(); got != c.out+"\n" {
			t.Errorf("%q (%s):\n got %q\nwant %q", c.in, c.basis, got, c.out+"\n")
		}
	}
}

// Rejected rules, with the column of the token at fault and a word of the
// reason. Each cites the kernel check it follows.
var rejectCases = []struct {
	in    string
	col   int
	why   string
	basis string
}{
	{"func=FILE_CHECK", 1, "no action", "ima_validate_rule: action UNKNOWN"},
	{"measure dont_measure", 9, "one action", "Opt_dont_measure: entry->action != UNKNOWN"},
	{"dont_audit", 1, "dont_audit", "policy_tokens has no dont_audit"},
	{"measure fs_subtype=ext4", 9, "fs_subtype", "not in mainline policy_tokens"},
	{"measure # comment", 9, "comment", "a '#' token is Opt_err"},
	{"measure bogus", 9, "unknown token", "Opt_err"},
	{"measure func=", 9, "empty value", "match_token %s needs a character"},
	{"measure func=NONE", 9, "unknown func", "Opt_func"},
	{"measure func=POST_SETATTR", 9, "unknown func", "Opt_func"},
	{"measure func=file_check", 9, "unknown func", "strcmp is case-sensitive"},
	{"measure func=FILE_CHECK func=BPRM_CHECK", 25, "twice", "if (entry->func)"},
	{"measure mask=MAY_READ mask=MAY_EXEC", 23, "twice", "if (entry->mask)"},
	{"measure mask=MAY_NOTHING", 9, "unknown mask", "Opt_mask"},
	{"measure mask=^^MAY_READ", 9, "unknown mask", "one ^"},
	{"measure fsmagic=0x", 9, "hexadecimal", "kstrtoul: no digits"},
	{"measure fsmagic=xyz", 9, "hexadecimal", "kstrtoul"},
	{"measure fsmagic=10000000000000000", 9, "hexadecimal", "kstrtoul overflow"},
	{"measure fsmagic=1 fsmagic=2", 19, "twice", "if (entry->fsmagic)"},
	{"measure fsuuid=1234", 9, "fsuuid", "uuid_parse"},
	{"measure fsuuid=6a7b8c9d_0e1f-2a3b-4c5d-6e7f8a9b0c1d", 9, "fsuuid", "uuid_is_valid dashes"},
	{"measure fsuuid=00000000-0000-0000-0000-000000000001 fsuuid=00000000-0000-0000-0000-000000000001", 53, "twice", "uuid_is_null"},
	{"measure uid=-1", 9, "decimal", "kstrtoul: no sign"},
	{"measure uid=4294967295", 9, "decimal", "INVALID_UID"},
	{"measure uid=4294967296", 9, "decimal", "(uid_t)lnum != lnum"},
	{"measure uid=0x10", 9, "decimal", "base 10"},
	{"measure uid=0 uid=1", 15, "one of uid or euid", "uid_valid(entry->uid)"},
	{"measure uid=0 euid=0", 15, "one of uid or euid", "uid and euid share entry->uid"},
	{"measure egid=0 gid<5", 16, "one of gid or egid", "gid and egid share entry->gid"},
	{"measure fowner=0 fowner>1", 18, "twice", "uid_valid(entry->fowner)"},
	{"measure fgroup=0 fgroup=0", 18, "twice", "gid_valid(entry->fgroup)"},
	{"measure func<FILE_CHECK", 9, "unknown token", "only ids take < and >"},
	{"measure obj_type=a obj_type=b", 20, "twice", "ima_lsm_rule_init: lsm[].rule set"},
	{"measure func=KEY_CHECK keyrings=a||b", 24, "none empty", "ima_alloc_rule_opt_list: empty item"},
	{"measure func=KEY_CHECK keyrings=a|", 24, "none empty", "empty item"},
	{"measure func=KEY_CHECK keyrings=a keyrings=b", 35, "twice", "entry->keyrings"},
	{"measure func=CRITICAL_DATA label=a label=b", 36, "twice", "entry->label"},
	{"measure pcr=64", 9, "pcr", "INVALID_PCR"},
	{"measure pcr=-1", 9, "pcr", "INVALID_PCR"},
	{"measure pcr=x", 9, "pcr", "kstrtoint"},
	{"dont_measure pcr=1", 14, "only for measure", "action != MEASURE && IMA_PCR"},
	{"template=ima-ng measure", 1, "follow a measure", "entry->action != MEASURE at Opt_template"},
	{"dont_measure template=ima-ng", 14, "follow a measure", "Opt_template"},
	{"measure template=nosuch", 9, "unknown template", "lookup_template_desc"},
	{"measure template=ima-ng template=ima-sig", 25, "twice", "entry->template"},
	{"measure appraise_type=imasig", 9, "only for appraise", "action != APPRAISE && IMA_DIGSIG_REQUIRED"},
	{"dont_appraise appraise_type=imasig", 15, "only for appraise", "same"},
	{"measure appraise_algos=sha256", 9, "only for appraise", "IMA_VALIDATE_ALGOS"},
	{"appraise appraise_algos=sha256 appraise_algos=sha1", 32, "twice", "entry->allowed_algos"},
	{"appraise appraise_algos=sha257", 10, "unknown hash", "match_string(hash_algo_name)"},
	{"appraise appraise_algos=sha256,", 10, "unknown hash", "empty name"},
	{"appraise appraise_type=rsa", 10, "appraise_type", "Opt_appraise_type"},
	{"appraise digest_type=verity appraise_type=imasig", 29, "after digest_type", "imasig after IMA_VERITY_REQUIRED"},
	{"appraise func=MODULE_CHECK digest_type=verity appraise_type=imasig|modsig", 47, "after digest_type", "imasig|modsig after verity"},
	{"appraise func=MODULE_CHECK appraise_type=sigv3 appraise_type=imasig|modsig", 48, "or appraise_type=sigv3", "imasig|modsig after sigv3"},
	{"appraise digest_type=verity", 10, "needs appraise_type", "APPRAISE && VERITY && !DIGSIG"},
	{"measure digest_type=hash", 9, "verity", "only verity"},
	{"appraise appraise_type=imasig|modsig", 10, "not allowed with a rule without func", "MODSIG_ALLOWED not in the NONE group"},
	{"appraise func=BPRM_CHECK appraise_type=imasig|modsig", 26, "not allowed with func=BPRM_CHECK", "file group"},
	{"appraise func=MODULE_CHECK appraise_type=sigv3", 28, "not allowed with func=MODULE_CHECK", "module group lacks IMA_SIGV3_REQUIRED"},
	{"measure func=MODULE_CHECK digest_type=verity", 27, "not allowed with func=MODULE_CHECK", "module group lacks IMA_VERITY_REQUIRED"},
	{"measure keyrings=a", 9, "not allowed with a rule without func", "IMA_KEYRINGS only with KEY_CHECK"},
	{"measure func=FILE_CHECK label=a", 25, "not allowed with func=FILE_CHECK", "IMA_LABEL only with CRITICAL_DATA"},
	{"appraise func=KEXEC_CMDLINE", 1, "only measure or dont_measure", "KEXEC_CMDLINE actions"},
	{"measure func=KEXEC_CMDLINE mask=MAY_READ", 28, "not allowed with func=KEXEC_CMDLINE", "KEXEC_CMDLINE flags"},
	{"measure func=KEXEC_CMDLINE permit_directio", 28, "not allowed", "KEXEC_CMDLINE flags"},
	{"dont_appraise func=KEY_CHECK", 1, "only measure or dont_measure", "KEY_CHECK actions"},
	{"measure func=KEY_CHECK euid=0", 24, "not allowed with func=KEY_CHECK", "KEY_CHECK flags: no IMA_EUID"},
	{"measure func=KEY_CHECK fsmagic=1", 24, "not allowed", "KEY_CHECK flags"},
	{"measure func=KEY_CHECK obj_type=t", 24, "LSM", "ima_rule_contains_lsm_cond"},
	{"measure func=KEY_CHECK label=a", 24, "not allowed", "KEY_CHECK: no IMA_LABEL"},
	{"hash func=CRITICAL_DATA", 1, "only measure or dont_measure", "CRITICAL_DATA actions"},
	{"measure func=CRITICAL_DATA subj_user=u", 28, "LSM", "no LSM"},
	{"measure func=CRITICAL_DATA keyrings=k", 28, "not allowed", "no IMA_KEYRINGS"},
	{"measure func=SETXATTR_CHECK appraise_algos=sha256", 29, "only for appraise", "appraise_algos needs appraise"},
	{"dont_appraise func=SETXATTR_CHECK", 1, "takes only appraise", "SETXATTR_CHECK actions"},
	{"appraise func=SETXATTR_CHECK", 10, "needs appraise_algos", "SETXATTR_CHECK requires IMA_VALIDATE_ALGOS"},
	{"appraise func=SETXATTR_CHECK appraise_algos=sha256 fowner=0", 52, "not allowed", "only IMA_FUNC|IMA_VALIDATE_ALGOS"},
	{"measure" + "\x00", 8, "NUL", "strings end at NUL in the kernel"},
}

func TestParseReject(t *testing.T) {
	for _, c := range rejectCases {
		_, err := ParseBytes([]byte("# header\n" + c.in + "\n"))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q (%s): want a *ParseError, got %v", c.in, c.basis, err)
			continue
		}
		if pe.Line != 2 || pe.Col != c.col || !strings.Contains(pe.Error(), c.why) {
			t.Errorf("%q (%s): got line %d col %d %q, want 2:%d containing %q", c.in, c.basis, pe.Line, pe.Col, pe.Error(), c.col, c.why)
		}
	}
}

func TestParseCommentsAndBlank(t *testing.T) {
	// ima_parse_add_rule: leading blanks skipped; '#' first or nothing left
	// means a comment.
	in := "# a comment\n\n   \t\n  # indented comment\nmeasure func=BPRM_CHECK\n\nappraise fowner=0"
	p, err := ParseBytes([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 2 || p.Rules[0].Line != 5 || p.Rules[1].Line != 7 {
		t.Fatalf("rules %+v", p.Rules)
	}
	if got, want := p.Format(), "measure func=BPRM_CHECK \nappraise fowner=0 \n"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestParseLimits(t *testing.T) {
	long := "measure fsname=" + strings.Repeat("x", MaxLineLen)
	_, err := ParseBytes([]byte(long))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("long line: %v", err)
	}
	_, err = ParseRule("measure\nmeasure")
	if err == nil {
		t.Error("ParseRule with two lines: no error")
	}
}

func TestWarnings(t *testing.T) {
	in := `measure func=FILE_CHECK
measure func=BPRM_CHECK
measure
measure func=MMAP_CHECK
measure func=MMAP_CHECK_REQPROT
measure func=CREDS_CHECK
measure func=MODULE_CHECK
measure func=FIRMWARE_CHECK
measure func=KEXEC_KERNEL_CHECK
measure func=KEXEC_INITRAMFS_CHECK
measure func=POLICY_CHECK
measure func=KEXEC_CMDLINE
measure func=KEY_CHECK
measure func=CRITICAL_DATA
appraise func=SETXATTR_CHECK appraise_algos=sha256
appraise appraise_type=imasig appraise_flag=check_blacklist
`
	p, err := ParseBytes([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	w := p.Warnings()
	// one per unobservable rule (lines 4..15), one for the ignored flag
	if len(w) != 13 {
		t.Fatalf("got %d warnings: %v", len(w), w)
	}
	for i := 0; i < 12; i++ {
		if w[i].Line != i+4 || w[i].Func == FuncNone || w[i].Why == "" {
			t.Errorf("warning %d: %v", i, w[i])
		}
	}
	if w[12].Line != 16 || !strings.Contains(w[12].Why, "appraise_flag") {
		t.Errorf("appraise_flag warning: %v", w[12])
	}
}

// The architecture policy strings the kernel itself feeds to ima_parse_rule
// at boot (security/integrity/ima/ima_efi.c sb_arch_rules, earlier
// arch/x86/kernel/ima_arch.c; arch/powerpc/kernel/ima_arch.c, with the
// appraise_flag=check_blacklist of kernels before the blacklist default)
// must parse and read back canonically.
func TestArchRules(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig", "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig"},
		{"measure func=KEXEC_KERNEL_CHECK", "measure func=KEXEC_KERNEL_CHECK"},
		{"appraise func=MODULE_CHECK appraise_type=imasig", "appraise func=MODULE_CHECK appraise_type=imasig"},
		{"appraise func=POLICY_CHECK appraise_type=imasig", "appraise func=POLICY_CHECK appraise_type=imasig"},
		{"measure func=MODULE_CHECK", "measure func=MODULE_CHECK"},
		{"appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig", "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig"},
		{"appraise func=KEXEC_KERNEL_CHECK appraise_flag=check_blacklist appraise_type=imasig|modsig", "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig|modsig"},
		{"appraise func=MODULE_CHECK appraise_flag=check_blacklist appraise_type=imasig|modsig", "appraise func=MODULE_CHECK appraise_type=imasig|modsig"},
		{"measure func=KEXEC_KERNEL_CHECK template=ima-modsig", "measure func=KEXEC_KERNEL_CHECK template=ima-modsig"},
		{"measure func=MODULE_CHECK template=ima-modsig", "measure func=MODULE_CHECK template=ima-modsig"},
	} {
		r, err := ParseRule(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := r.String(); got != c.out+" " {
			t.Errorf("%q: got %q want %q", c.in, got, c.out+" ")
		}
	}
}
