package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testfixture"
)

// The built-in policies as ima_policy_show would print them, transcribed by
// hand from the rule arrays of mainline security/integrity/ima/ima_policy.c
// (dont_measure_rules, default_measurement_rules, original_measurement_rules,
// secure_boot_rules, default_appraise_rules, critical_data_rules) with the
// magic numbers of include/uapi/linux/magic.h. The tmpfs dont_measure rule
// carries func=FILE_CHECK since the 2025 patch "ima: limit the builtin 'tcb'
// dont_measure tmpfs policy rule".
const dontMeasureText = `dont_measure fsmagic=0x9fa0 
dont_measure fsmagic=0x62656572 
dont_measure fsmagic=0x64626720 
dont_measure func=FILE_CHECK fsmagic=0x1021994 
dont_measure fsmagic=0x1cd1 
dont_measure fsmagic=0x42494e4d 
dont_measure fsmagic=0x73636673 
dont_measure fsmagic=0xf97cff8c 
dont_measure fsmagic=0x43415d53 
dont_measure fsmagic=0x27e0eb 
dont_measure fsmagic=0x63677270 
dont_measure fsmagic=0x6e736673 
dont_measure fsmagic=0xde5e81e4 
`

const tcbText = dontMeasureText + `measure func=MMAP_CHECK mask=MAY_EXEC 
measure func=BPRM_CHECK mask=MAY_EXEC 
measure func=FILE_CHECK mask=^MAY_READ euid=0 
measure func=FILE_CHECK mask=^MAY_READ uid=0 
measure func=MODULE_CHECK 
measure func=FIRMWARE_CHECK 
measure func=POLICY_CHECK 
`

const imaTCBText = dontMeasureText + `measure func=MMAP_CHECK mask=MAY_EXEC 
measure func=BPRM_CHECK mask=MAY_EXEC 
measure func=FILE_CHECK mask=MAY_READ uid=0 
measure func=MODULE_CHECK 
measure func=FIRMWARE_CHECK 
`

const secureBootText = `appraise func=MODULE_CHECK appraise_type=imasig 
appraise func=FIRMWARE_CHECK appraise_type=imasig 
appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig 
appraise func=POLICY_CHECK appraise_type=imasig 
`

const dontAppraiseText = `dont_appraise fsmagic=0x9fa0 
dont_appraise fsmagic=0x62656572 
dont_appraise fsmagic=0x64626720 
dont_appraise fsmagic=0x1021994 
dont_appraise fsmagic=0x858458f6 
dont_appraise fsmagic=0x1cd1 
dont_appraise fsmagic=0x42494e4d 
dont_appraise fsmagic=0x73636673 
dont_appraise fsmagic=0xf97cff8c 
dont_appraise fsmagic=0x43415d53 
dont_appraise fsmagic=0x6e736673 
dont_appraise fsmagic=0xde5e81e4 
dont_appraise fsmagic=0x27e0eb 
dont_appraise fsmagic=0x63677270 
`

const appraiseTCBText = dontAppraiseText + "appraise fowner=0 \n"

const criticalText = "measure func=CRITICAL_DATA \n"

func TestBuiltinText(t *testing.T) {
	for _, c := range []struct {
		names []string
		cfg   BuiltinConfig
		want  string
		fail  bool
	}{
		{[]string{"tcb"}, BuiltinConfig{}, tcbText, false},
		{[]string{"ima_tcb"}, BuiltinConfig{}, imaTCBText, false},
		{[]string{"ima_tcb", "tcb"}, BuiltinConfig{}, imaTCBText, false}, // the first of the two wins
		{[]string{"secure_boot"}, BuiltinConfig{}, secureBootText, false},
		{[]string{"appraise_tcb"}, BuiltinConfig{}, appraiseTCBText, false},
		{[]string{"ima_appraise_tcb"}, BuiltinConfig{}, appraiseTCBText, false},
		{[]string{"appraise_tcb"}, BuiltinConfig{WritePolicy: true, SignedInit: true},
			dontAppraiseText + "appraise func=POLICY_CHECK appraise_type=imasig \nappraise fowner=0 appraise_type=imasig \n", false},
		{[]string{"critical_data"}, BuiltinConfig{}, criticalText, false},
		{[]string{"fail_securely"}, BuiltinConfig{}, "", true},
		// boot order regardless of the order named (ima_init_policy)
		{[]string{"critical_data|appraise_tcb fail_securely", "secure_boot", "tcb"}, BuiltinConfig{},
			tcbText + secureBootText + appraiseTCBText + criticalText, true},
	} {
		p, err := BuiltinWith(c.cfg, c.names...)
		if err != nil {
			t.Fatalf("%v: %v", c.names, err)
		}
		if got := p.Format(); got != c.want {
			t.Errorf("%v:\n got %q\nwant %q", c.names, got, c.want)
		}
		if p.FailSecurely != c.fail {
			t.Errorf("%v: FailSecurely %v", c.names, p.FailSecurely)
		}
		// The read-back of a built-in policy parses back to the same rules.
		q, err := ParseBytes([]byte(p.Format()))
		if err != nil {
			t.Fatalf("%v: read-back does not parse: %v", c.names, err)
		}
		if !rulesEqual(p.Rules, q.Rules) {
			t.Errorf("%v: read-back parses to other rules", c.names)
		}
	}
	if _, err := Builtin("tcb", "nosuch"); err == nil {
		t.Error("unknown name accepted")
	}
	if !IsBuiltin("tcb|critical_data") || IsBuiltin("tcb|x") || IsBuiltin("") {
		t.Error("IsBuiltin")
	}
	p, _ := Builtin("tcb")
	// one warning per rule the agent cannot see: MMAP, MODULE, FIRMWARE, POLICY
	if w := p.Warnings(); len(w) != 4 || w[0].Line != 14 || w[0].Func != MmapCheck {
		t.Errorf("tcb warnings: %v", w)
	}
}

// The policies written by the real-kernel captures (Debian 6.1) must parse,
// and read back as the kernel normalises what was written: the same tokens
// (they are in the kernel's order already), each followed by a space, fsmagic
// without leading zeros. That the kernel read and accepted exactly this text
// is checked first: it measured the file (POLICY_CHECK) into the capture's
// list, and the rules it loaded then produced KEY_CHECK entries (h-ima-buf)
// and measured files owned by uid 1234 (p-ima-sig-signed).
func TestRealKernelPolicies(t *testing.T) {
	for _, c := range []struct{ dir, name string }{
		{"realkernel/h-ima-buf", "/etc/ima/policy-keys"},
		{"realkernel/p-ima-sig-signed", "/etc/ima/policy-sig"},
	} {
		path := c.dir + "/policy.txt"
		data := testfixture.Read(t, path)
		list := testfixture.Read(t, c.dir+"/ascii_runtime_measurements")
		sum := sha256.Sum256(data)
		digest, found := "sha256:"+hex.EncodeToString(sum[:]), false
		for _, l := range strings.Split(string(list), "\n") {
			if f := strings.Fields(l); len(f) >= 5 && f[3] == digest && f[4] == c.name {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: the kernel's list does not hold %s %s", c.dir, digest, c.name)
		}
		p, err := ParseBytes(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var want strings.Builder
		for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			want.WriteString(strings.Replace(l, "fsmagic=0x01021994", "fsmagic=0x1021994", 1) + " \n")
		}
		if got := p.Format(); got != want.String() {
			t.Errorf("%s: read-back\n%s\nwant\n%s", path, got, want.String())
		}
	}
}

func rulesEqual(a, b []Rule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !ruleEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func ruleEqual(a, b Rule) bool {
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}
