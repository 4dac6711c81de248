package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The policy the h-ima-buf capture wrote to a real kernel (Debian 6.1), which
// accepted it (the capture's list holds its KEY_CHECK and CRITICAL_DATA
// entries), read back in the kernel's form.
func TestPolicyCheckRealKernel(t *testing.T) {
	path := fixture(t, "h-ima-buf", "policy.txt")
	r := runCLI(t, nil, "policy", "check", path)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	data, _ := os.ReadFile(path)
	var want strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		want.WriteString(strings.Replace(l, "0x01021994", "0x1021994", 1) + " \n")
	}
	if r.stdout != want.String() {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want.String())
	}
	// MMAP, MODULE, FIRMWARE, POLICY, KEY_CHECK, CRITICAL_DATA: one warning each
	if n := strings.Count(r.stderr, "imago: warning: "); n != 6 {
		t.Errorf("want 6 warnings, got %d:\n%s", n, r.stderr)
	}
	if !strings.Contains(r.stderr, path+":20: func=KEY_CHECK: ") {
		t.Errorf("warning does not name file, line and func:\n%s", r.stderr)
	}
}

func TestPolicyCheckErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.policy")
	os.WriteFile(bad, []byte("# ok\nmeasure func=BPRM_CHECK\nmeasure uid=0 euid=0\n"), 0o644)
	r := runCLI(t, nil, "policy", "check", bad)
	if r.code != 2 {
		t.Errorf("exit %d, want 2", r.code)
	}
	if want := bad + `:3:15: "euid=0": `; !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q", r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q", r.stdout)
	}

	r = runCLI(t, []byte("appraise func=BPRM_CHECK appraise_type=imasig|modsig\n"), "policy", "check", "-")
	if r.code != 2 || !strings.HasPrefix(r.stderr, "<stdin>:1:26: ") {
		t.Errorf("stdin: exit %d stderr %q", r.code, r.stderr)
	}

	r = runCLI(t, nil, "policy", "check", filepath.Join(dir, "tcb"))
	if r.code != 2 {
		t.Errorf("missing file: exit %d", r.code)
	}
	r = runCLI(t, nil, "policy", "check", "tcb")
	if r.code != 2 || !strings.Contains(r.stderr, "--builtin tcb") {
		t.Errorf("builtin name as FILE: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "policy", "check", "--builtin", "nosuch")
	if r.code != 2 {
		t.Errorf("unknown builtin: exit %d", r.code)
	}
	r = runCLI(t, nil, "policy", "check", "--builtin", "tcb", bad)
	if r.code != 2 {
		t.Errorf("FILE and --builtin: exit %d", r.code)
	}
}

func TestPolicyCheckBuiltin(t *testing.T) {
	r := runCLI(t, nil, "policy", "check", "--builtin", "secure_boot|critical_data")
	// secure_boot_rules[] and critical_data_rules[] of ima_policy.c
	want := "appraise func=MODULE_CHECK appraise_type=imasig \n" +
		"appraise func=FIRMWARE_CHECK appraise_type=imasig \n" +
		"appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig \n" +
		"appraise func=POLICY_CHECK appraise_type=imasig \n" +
		"measure func=CRITICAL_DATA \n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	if n := strings.Count(r.stderr, "imago: warning: builtin secure_boot|critical_data:"); n != 5 {
		t.Errorf("want 5 warnings:\n%s", r.stderr)
	}
}

func TestLoadPolicy(t *testing.T) {
	c := &cli{stdout: &strings.Builder{}, stderr: &strings.Builder{}}
	p, err := c.loadPolicy("tcb")
	if err != nil || len(p.Rules) != 20 {
		t.Fatalf("tcb: %v", err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "tcb")
	os.WriteFile(f, []byte("measure func=BPRM_CHECK\n"), 0o644)
	p, err = c.loadPolicy(f)
	if err != nil || len(p.Rules) != 1 {
		t.Fatalf("file: %v", err)
	}
	if _, err := c.loadPolicy(filepath.Join(dir, "none")); err == nil {
		t.Error("missing file accepted")
	}
}
