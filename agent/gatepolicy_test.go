package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/fsfacts"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/policy"
)

// TestViolationExtend: a violation entry extends 0xFF over each bank, and
// from zero PCRs gives ima-spec.md §12.6's values; the exports show zeros
// and count it in violations.
func TestViolationExtend(t *testing.T) {
	tmpl, _ := ima.LookupTemplate(ima.TemplateIMANG)
	ev := &event{Name: "/tmp/x", File: true, Alg: ima.HashSHA256, Digest: make([]byte, 32), D: make([]byte, 20)}
	e, err := buildEntry(tmpl, ev, 10, binary.NativeEndian)
	if err != nil {
		t.Fatal(err)
	}
	e.Digest = make([]byte, 20)
	if !validRecord(e) {
		t.Error("validRecord refuses a violation entry")
	}
	banks := []BankInfo{{pcr.SHA1, 20}, {pcr.SHA256, 32}}
	want := map[pcr.Bank]string{
		pcr.SHA1:   "bac37b84f007d0238af95af707cac8d61254870e",
		pcr.SHA256: "bba91ca85dc914b2ec3efb9e16e7267bf9193b14350d20fba8a8b406730ae30a",
	}
	for b, d := range bankDigests(e, e.Digest, banks) {
		if got := hex.EncodeToString(pcr.Extend(b, pcr.Zero(b), d)); got != want[b] {
			t.Errorf("%s: %s, ima-spec.md §12.6 says %s", b, got, want[b])
		}
	}
	dir := t.TempDir()
	x, err := newExports(dir, banks, binary.NativeEndian, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	if err := x.append(e, bankDigests(e, e.Digest, banks)); err != nil {
		t.Fatal(err)
	}
	if v, _ := os.ReadFile(filepath.Join(dir, exportViolations)); string(v) != "1\n" {
		t.Errorf("violations %q, want 1", v)
	}
	a, _ := os.ReadFile(filepath.Join(dir, exportASCII+"_sha256"))
	if !strings.HasPrefix(string(a), "10 "+strings.Repeat("0", 64)+" ima-ng sha256:"+strings.Repeat("0", 64)+" /tmp/x") {
		t.Errorf("sha256 ascii export %q", a)
	}
	bin, _ := os.ReadFile(filepath.Join(dir, exportBinary+"_sha1"))
	if !bytes.Equal(bin[4:24], make([]byte, 20)) {
		t.Errorf("sha1 binary export digest %x, want zeros", bin[4:24])
	}
}

// TestGatePolicyAdapter: the tcb built-in needs credentials (uid=0),
// filesystem facts (fsmagic=) and opens (FILE_CHECK); facts map to the
// policy's event field by field.
func TestGatePolicyAdapter(t *testing.T) {
	gp, warns, err := LoadGatePolicy("tcb", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := gp.Needs()
	if !n.Cred || !n.FS || !n.Opens || !n.Measure || n.Appraise || n.Labels {
		t.Errorf("tcb needs %+v", n)
	}
	_ = warns
	if w := gp.Wants(HookBPRM, fsfacts.MayExec); w.Cred || !w.FS {
		t.Errorf("tcb wants %+v for an exec: no rule for BPRM_CHECK tests credentials; dont_measure tests fsmagic", w)
	}
	if w := gp.Wants(HookFile, fsfacts.MayExec); w.Cred {
		t.Errorf("tcb wants credentials for FILE_CHECK MAY_EXEC (the uid rules are mask=MAY_READ)")
	}
	if w := gp.Wants(HookFile, fsfacts.MayRead); !w.Cred {
		t.Errorf("tcb does not want credentials for FILE_CHECK MAY_READ")
	}
	f := &Facts{Hook: HookFile, Mask: fsfacts.MayRead, FS: fsfacts.FS{Magic: policy.ProcSuperMagic},
		Cred: fsfacts.Cred{UID: 0, EUID: 0}}
	if v := gp.Evaluate(f); v.Measure {
		t.Errorf("tcb measures a read on procfs")
	}
	f.FS.Magic = 0xef53 // ext4
	if v := gp.Evaluate(f); !v.Measure {
		t.Errorf("tcb does not measure root's read on ext4")
	}
	f.Cred.UID, f.Cred.EUID = 1000, 1000
	if v := gp.Evaluate(f); v.Measure {
		t.Errorf("tcb measures uid 1000's read")
	}
	f.Hook, f.Mask = HookBPRM, fsfacts.MayExec
	if v := gp.Evaluate(f); !v.Measure {
		t.Errorf("tcb does not measure an exec")
	}

	p, err := policy.ParseBytes([]byte("appraise func=BPRM_CHECK appraise_type=imasig appraise_algos=sha256,sha512 subj_type=init_t\n" +
		"measure func=BPRM_CHECK pcr=11 template=ima-sig\n"))
	if err != nil {
		t.Fatal(err)
	}
	gp = NewGatePolicy(p)
	if n := gp.Needs(); !n.Labels || !n.Appraise || n.Opens || n.Cred {
		t.Errorf("needs %+v", n)
	}
	f = &Facts{Hook: HookBPRM, Mask: fsfacts.MayExec, SubjLabel: "system_u:system_r:init_t:s0"}
	v := gp.Evaluate(f)
	if !v.Appraise || !v.Require.Signature || len(v.Require.AllowedAlgos) != 2 || !v.Measure || v.PCR != 11 || v.Template != "ima-sig" {
		t.Errorf("verdict %+v", v)
	}
	f.SubjLabel = "unconfined" // not SELinux: no label fields, no match
	if v := gp.Evaluate(f); v.Appraise {
		t.Errorf("an AppArmor-style label matched subj_type")
	}
}

// TestFileCheckInert: a filesystem is inert when the first rule of both the
// measure and the appraise pair that can apply to any FILE_CHECK open there
// is a dont_ rule testing the filesystem alone (ima_match_policy's first
// match, ima-spec.md §8.5). The built-in rules are the kernel's
// (ima_policy.c): tcb's tmpfs rule is `dont_measure fsmagic=0x1021994
// func=FILE_CHECK`, appraise_tcb's `dont_appraise fsmagic=0x1021994`.
func TestFileCheckInert(t *testing.T) {
	const ext4 = 0xef53
	for _, c := range []struct {
		policy string
		magic  uint64
		want   bool
	}{
		{"tcb", policy.TmpfsMagic, true},
		{"tcb", policy.ProcSuperMagic, true},
		{"tcb", ext4, false},
		{"tcb", policy.RamfsMagic, false},
		{"tcb|appraise_tcb", policy.TmpfsMagic, true},
		{"tcb|appraise_tcb", ext4, false},
		{"measure func=BPRM_CHECK\n", ext4, true},
		{"measure func=BPRM_CHECK mask=MAY_EXEC\nmeasure func=FILE_CHECK mask=MAY_READ uid=0\n", policy.TmpfsMagic, false},
		// A dont_ rule that also tests the process decides nothing.
		{"dont_measure fsmagic=0xef53 uid=0\nmeasure func=FILE_CHECK\n", ext4, false},
		{"dont_measure fsmagic=0xef53\nmeasure func=FILE_CHECK\n", ext4, true},
		{"dont_measure fsmagic=0xef53\nappraise func=FILE_CHECK fowner=0\n", ext4, false},
		{"dont_measure func=FILE_CHECK mask=MAY_READ\nmeasure\n", ext4, false},
	} {
		var p *policy.Policy
		var err error
		if policy.IsBuiltin(c.policy) {
			p, err = policy.Builtin(c.policy)
		} else {
			p, err = policy.ParseBytes([]byte(c.policy))
		}
		if err != nil {
			t.Fatalf("%q: %v", c.policy, err)
		}
		if got := NewGatePolicy(p).FileCheckInert(fsfacts.FS{Magic: c.magic}); got != c.want {
			t.Errorf("%q on fsmagic 0x%x: inert %v, want %v", c.policy, c.magic, got, c.want)
		}
	}
}
