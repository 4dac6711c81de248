package policy

import "testing"

func mustParse(t testing.TB, s string) *Policy {
	t.Helper()
	p, err := ParseBytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const ext4 = 0xef53

// Evaluation tables; each case notes the ima_match_rules / ima_match_policy
// behaviour it rests on.
func TestEvaluate(t *testing.T) {
	tcb, _ := Builtin("tcb")
	user := Event{Func: FileCheck, Mask: MayRead, FSMagic: ext4, UID: 1000, EUID: 1000, SUID: 1000}
	cases := []struct {
		name string
		p    *Policy
		ev   Event
		want Decision
	}{
		// tcb
		{"tcb: exec is measured", tcb, Event{Func: BprmCheck, Mask: MayExec, FSMagic: ext4, UID: 1000, EUID: 1000}, Decision{Measure: true}},
		{"tcb: root read is measured (uid=0)", tcb, Event{Func: FileCheck, Mask: MayRead, FSMagic: ext4}, Decision{Measure: true}},
		{"tcb: root O_RDWR is measured (mask=^MAY_READ)", tcb, Event{Func: FileCheck, Mask: MayRead | MayWrite, FSMagic: ext4}, Decision{Measure: true}},
		{"tcb: root write-only is not (no MAY_READ bit)", tcb, Event{Func: FileCheck, Mask: MayWrite, FSMagic: ext4}, Decision{}},
		{"tcb: user read is not", tcb, user, Decision{}},
		{"tcb: setuid-root euid is measured", tcb, Event{Func: FileCheck, Mask: MayRead, FSMagic: ext4, UID: 1000, EUID: 0}, Decision{Measure: true}},
		{"tcb: proc is not measured", tcb, Event{Func: BprmCheck, Mask: MayExec, FSMagic: ProcSuperMagic}, Decision{}},
		{"tcb: tmpfs FILE_CHECK is not measured", tcb, Event{Func: FileCheck, Mask: MayRead, FSMagic: TmpfsMagic}, Decision{}},
		{"tcb: tmpfs exec is measured (dont_measure tmpfs is FILE_CHECK only)", tcb, Event{Func: BprmCheck, Mask: MayExec, FSMagic: TmpfsMagic}, Decision{Measure: true}},
		{"tcb: exec mask must be exact", tcb, Event{Func: BprmCheck, Mask: MayExec | MayRead, FSMagic: ext4, UID: 1000, EUID: 1000}, Decision{}},

		// first match per action pair
		{"dont_measure before measure", mustParse(t, "dont_measure fsmagic=ef53\nmeasure\n"), user, Decision{}},
		{"measure before dont_measure", mustParse(t, "measure\ndont_measure fsmagic=ef53\n"), user, Decision{Measure: true}},
		{"pairs are independent", mustParse(t, "dont_measure\nappraise\naudit\nhash\n"), user, Decision{Appraise: true, Audit: true, Hash: true}},
		{"first measure rule's pcr and template", mustParse(t, "measure uid=1000 pcr=11 template=ima-sig\nmeasure pcr=12 template=ima-buf\n"), user,
			Decision{Measure: true, HasPCR: true, PCR: 11, Template: "ima-sig"}},
		{"flags are ORed from every matching rule", mustParse(t, "measure permit_directio\nappraise appraise_type=imasig\n"), user,
			Decision{Measure: true, Appraise: true, PermitDirectIO: true, DigSigRequired: true}},
		{"a dont rule's flags count too", mustParse(t, "dont_measure permit_directio\n"), user, Decision{PermitDirectIO: true}},

		// appraise and hash
		{"appraise removes hash", mustParse(t, "hash\nappraise\n"), user, Decision{Appraise: true}},
		{"hash after appraise stays", mustParse(t, "appraise\nhash\n"), user, Decision{Appraise: true, Hash: true}},
		{"dont_hash", mustParse(t, "dont_hash\nhash\n"), user, Decision{}},
		{"appraise_algos from the appraise rule", mustParse(t, "appraise appraise_algos=sha256,sha512\n"), user,
			Decision{Appraise: true, AppraiseAlgos: 1<<4 | 1<<6}},
		{"modsig and sigv3 flags", mustParse(t, "appraise func=MODULE_CHECK appraise_type=imasig|modsig\n"), Event{Func: ModuleCheck, Mask: MayRead},
			Decision{Appraise: true, DigSigRequired: true, ModSigAllowed: true}},
		{"sigv3 with verity", mustParse(t, "appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3\n"), Event{Func: BprmCheck, Mask: MayExec},
			Decision{Appraise: true, DigSigRequired: true, SigV3Required: true, VerityRequired: true}},
		{"fail_securely", &Policy{Rules: mustParse(t, "appraise\nmeasure\n").Rules, FailSecurely: true}, user,
			Decision{Appraise: true, Measure: true, FailUnverifiableSigs: true}},
		{"fail_securely needs an appraise match", &Policy{Rules: mustParse(t, "measure\n").Rules, FailSecurely: true}, user, Decision{Measure: true}},

		// mask
		{"mask exact: O_RDWR is not MAY_READ", mustParse(t, "measure mask=MAY_READ\n"), Event{Func: FileCheck, Mask: MayRead | MayWrite}, Decision{}},
		{"mask exact: MAY_READ", mustParse(t, "measure mask=MAY_READ\n"), Event{Func: FileCheck, Mask: MayRead}, Decision{Measure: true}},
		{"mask ^: O_RDWR includes MAY_READ", mustParse(t, "measure mask=^MAY_READ\n"), Event{Func: FileCheck, Mask: MayRead | MayWrite}, Decision{Measure: true}},
		{"mask ^: write-only", mustParse(t, "measure mask=^MAY_READ\n"), Event{Func: FileCheck, Mask: MayWrite}, Decision{}},

		// ids
		{"uid<", mustParse(t, "measure uid<1000\n"), Event{UID: 999}, Decision{Measure: true}},
		{"uid< boundary", mustParse(t, "measure uid<1000\n"), Event{UID: 1000}, Decision{}},
		{"uid>", mustParse(t, "measure uid>1000\n"), Event{UID: 1001}, Decision{Measure: true}},
		{"uid> boundary", mustParse(t, "measure uid>1000\n"), Event{UID: 1000}, Decision{}},
		{"euid without CAP_SETUID: euid only", mustParse(t, "measure euid=0\n"), Event{UID: 0, EUID: 5, SUID: 0}, Decision{}},
		{"euid with CAP_SETUID: suid", mustParse(t, "measure euid=0\n"), Event{UID: 5, EUID: 5, SUID: 0, CapSetUID: true}, Decision{Measure: true}},
		{"euid with CAP_SETUID: uid", mustParse(t, "measure euid=0\n"), Event{UID: 0, EUID: 5, SUID: 5, CapSetUID: true}, Decision{Measure: true}},
		{"euid with CAP_SETUID: none", mustParse(t, "measure euid=0\n"), Event{UID: 5, EUID: 5, SUID: 5, CapSetUID: true}, Decision{}},
		{"egid with CAP_SETGID: sgid", mustParse(t, "measure egid>100\n"), Event{GID: 1, EGID: 1, SGID: 101, CapSetGID: true}, Decision{Measure: true}},
		{"egid without CAP_SETGID", mustParse(t, "measure egid>100\n"), Event{GID: 1, EGID: 1, SGID: 101}, Decision{}},
		{"gid", mustParse(t, "measure gid=7\n"), Event{GID: 7}, Decision{Measure: true}},
		{"fowner", mustParse(t, "measure fowner=1234\n"), Event{FOwner: 1234}, Decision{Measure: true}},
		{"fowner mismatch", mustParse(t, "measure fowner=1234\n"), Event{FOwner: 0}, Decision{}},
		{"fgroup<", mustParse(t, "measure fgroup<10\n"), Event{FGroup: 9}, Decision{Measure: true}},

		// filesystem
		{"fsname", mustParse(t, "dont_measure fsname=tmpfs\nmeasure\n"), Event{FSName: "tmpfs"}, Decision{}},
		{"fsuuid", mustParse(t, "measure fsuuid=00000000-0000-0000-0000-000000000001\n"), Event{FSUUID: [16]byte{15: 1}}, Decision{Measure: true}},
		{"fsuuid mismatch", mustParse(t, "measure fsuuid=00000000-0000-0000-0000-000000000001\n"), Event{}, Decision{}},

		// LSM
		{"LSM label matches", mustParse(t, "measure obj_type=bin_t subj_user=system_u\n"), Event{Obj: Labels{Type: "bin_t"}, Subj: Labels{User: "system_u"}}, Decision{Measure: true}},
		{"LSM label differs", mustParse(t, "measure obj_type=bin_t\n"), Event{Obj: Labels{Type: "etc_t"}}, Decision{}},
		{"LSM label unknown never matches", mustParse(t, "measure subj_role=r\n"), Event{}, Decision{}},

		// KEY_CHECK and CRITICAL_DATA only match rules naming them
		{"KEY_CHECK: generic rule does not match", mustParse(t, "measure\n"), Event{Func: KeyCheck, Keyring: ".ima"}, Decision{}},
		{"KEY_CHECK: explicit rule", mustParse(t, "measure\nmeasure func=KEY_CHECK template=ima-buf\n"), Event{Func: KeyCheck, Keyring: ".ima"}, Decision{Measure: true, Template: "ima-buf"}},
		{"KEY_CHECK: keyring listed", mustParse(t, "measure func=KEY_CHECK keyrings=.ima|.evm\n"), Event{Func: KeyCheck, Keyring: ".evm"}, Decision{Measure: true}},
		{"KEY_CHECK: keyring not listed", mustParse(t, "measure func=KEY_CHECK keyrings=.ima\n"), Event{Func: KeyCheck, Keyring: ".evm"}, Decision{}},
		{"KEY_CHECK: uid checked", mustParse(t, "measure func=KEY_CHECK uid=0\n"), Event{Func: KeyCheck, UID: 1}, Decision{}},
		{"KEY_CHECK: gid accepted but not checked", mustParse(t, "measure func=KEY_CHECK gid=0\n"), Event{Func: KeyCheck, GID: 1}, Decision{Measure: true}},
		{"CRITICAL_DATA: label", mustParse(t, "measure func=CRITICAL_DATA label=kernel_info\n"), Event{Func: CriticalData, Label: "kernel_info"}, Decision{Measure: true}},
		{"CRITICAL_DATA: other label", mustParse(t, "measure func=CRITICAL_DATA label=selinux\n"), Event{Func: CriticalData, Label: "kernel_info"}, Decision{}},
		{"CRITICAL_DATA from critical_data builtin", mustBuiltin(t, "critical_data"), Event{Func: CriticalData, Label: "kernel_version"}, Decision{Measure: true}},

		// func
		{"func mismatch", mustParse(t, "measure func=BPRM_CHECK\n"), Event{Func: FileCheck}, Decision{}},
		{"PATH_CHECK alias matches FILE_CHECK", mustParse(t, "measure func=PATH_CHECK\n"), Event{Func: FileCheck}, Decision{Measure: true}},
		{"SETXATTR_CHECK rules never match a hook", mustParse(t, "appraise func=SETXATTR_CHECK appraise_algos=sha256\n"), Event{Func: SetxattrCheck}, Decision{}},
	}
	for _, c := range cases {
		if got := c.p.Evaluate(c.ev); got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	p := mustParse(t, "appraise func=SETXATTR_CHECK appraise_algos=sha256\nappraise func=SETXATTR_CHECK appraise_algos=sha1\n")
	if a, ok := p.SetxattrAlgos(); !ok || a != 1<<4 {
		t.Errorf("SetxattrAlgos: %v %v", a, ok)
	}
}

func mustBuiltin(t testing.TB, names ...string) *Policy {
	t.Helper()
	p, err := Builtin(names...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func BenchmarkEvaluate(b *testing.B) {
	p := mustBuiltin(b, "tcb")
	evs := []Event{
		{Func: BprmCheck, Mask: MayExec, FSMagic: ext4, UID: 1000, EUID: 1000, SUID: 1000},
		{Func: FileCheck, Mask: MayRead, FSMagic: ext4, UID: 1000, EUID: 1000, SUID: 1000},
		{Func: FileCheck, Mask: MayRead, FSMagic: ext4},
		{Func: FileCheck, Mask: MayRead, FSMagic: TmpfsMagic},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = p.Evaluate(evs[i&3])
		i++
	}
}

// The README says evaluation allocates nothing (on the tcb policy).
func TestEvaluateAllocs(t *testing.T) {
	for _, name := range []string{"tcb", "appraise_tcb"} {
		p := mustBuiltin(t, name)
		evs := []Event{
			{Func: BprmCheck, Mask: MayExec, FSMagic: ext4, UID: 1000, EUID: 1000, SUID: 1000},
			{Func: FileCheck, Mask: MayRead, FSMagic: ext4, UID: 1000, EUID: 1000, SUID: 1000},
			{Func: FileCheck, Mask: MayRead, FSMagic: ext4},
			{Func: FileCheck, Mask: MayRead, FSMagic: TmpfsMagic},
		}
		// One run of 200 calls: AllocsPerRun divides by the runs.
		if n := testing.AllocsPerRun(1, func() {
			for i := range 200 {
				_ = p.Evaluate(evs[i&3])
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations in 200 calls of Evaluate", name, n)
		}
	}
}
