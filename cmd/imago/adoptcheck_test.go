package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// adopted is a list Debian's 6.1 kernel kept in TPM-bypass, adopted into a
// TPM that appeared later (adopt/testdata/*/PROVENANCE).
const adopted = "../../adopt/testdata/realkernel-sha1-sha256"

// TestLogCheckAdopted: log check on an adopted list matches PCR 10 in every
// bank and reports the zero boot aggregate as adopted, in text and JSON; on
// the same kind of list never adopted, it fails and says TPM-bypass.
func TestLogCheckAdopted(t *testing.T) {
	list := filepath.Join(adopted, "binary_runtime_measurements")
	pcrs := []string{"--pcrs", "sha1," + filepath.Join(adopted, "pcrs-sha1.txt"), "--pcrs", "sha256," + filepath.Join(adopted, "pcrs-sha256.txt")}
	r := runCLI(t, nil, append([]string{"log", "check", list}, pcrs...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "boot_aggregate sha256:"+strings.Repeat("0", 64)+": bypass list adopted by a late TPM: ") ||
		!strings.Contains(r.stdout, "sha256 PCR-10: matched at entry 424 of 424") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, append([]string{"log", "check", "--json", filepath.Join(adopted, "ascii_runtime_measurements")}, pcrs...)...)
	var out struct {
		Matched       bool
		BootAggregate struct{ Name, Rule, Note string } `json:"boot_aggregate"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || !out.Matched ||
		out.BootAggregate.Rule != "bypass list adopted by a late TPM" || !strings.Contains(out.BootAggregate.Note, "boot_aggregate_late") {
		t.Fatalf("exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}

	// The agent's own list, from the same boot, as the evidence: it replays
	// to PCR 11, its boot_aggregate_late matches PCR 0-9, its record says 18.
	r = runCLI(t, nil, append([]string{"log", "check", list, "--adopter-list", filepath.Join(adopted, "agent-list")}, pcrs...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "sha256 PCR-11: matched at entry 2 of 2") ||
		!strings.Contains(r.stdout, "boot_aggregate_late sha256:") || !strings.Contains(r.stdout, "matches the PCRs (PCR0-9)") ||
		!strings.Contains(r.stdout, "kernel_list_adopted: the TPM appeared when the kernel had listed 18 entries") {
		t.Fatalf("--adopter-list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Evidence that does not fit: the other boot's agent list (other PCR 11).
	other := "../../adopt/testdata/realkernel-sha1-sha256-sha384-sha512/agent-list"
	r = runCLI(t, nil, append([]string{"log", "check", list, "--adopter-list", other}, pcrs...)...)
	if r.code != exitFailed || !strings.Contains(r.stdout, "NOT evidence") {
		t.Fatalf("another boot's agent list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The real bypass list of a boot whose TPM never held it.
	bypass := "../../adopt/testdata/bypass-6.1/binary_runtime_measurements"
	r = runCLI(t, nil, "log", "check", bypass, "--pcrs", "sha256,"+filepath.Join(adopted, "pcrs-sha256.txt"))
	if r.code != 1 || !strings.Contains(r.stdout, "no TPM (zeros): TPM-bypass: the kernel had no TPM at boot") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A list with a real boot aggregate says nothing of bypass.
	withTPM := "../../testdata/realkernel/b-ima-sig"
	r = runCLI(t, nil, "log", "check", filepath.Join(withTPM, "binary_runtime_measurements"), "--pcrs", "sha256,"+filepath.Join(withTPM, "pcrs-sha256.txt"))
	if r.code != 0 || strings.Contains(r.stdout, "bypass") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyAdopted: imago verify on the same adopted list reports the zero
// boot aggregate as log check does (exit 0), takes --adopter-list the same
// way, and fails a bypass list the TPM does not hold.
func TestVerifyAdopted(t *testing.T) {
	list := filepath.Join(adopted, "binary_runtime_measurements")
	pcrs := []string{"--pcrs", "sha1," + filepath.Join(adopted, "pcrs-sha1.txt"), "--pcrs", "sha256," + filepath.Join(adopted, "pcrs-sha256.txt")}
	verify := func(args ...string) result {
		return runCLI(t, nil, append(append([]string{"verify", "--allow-violations"}, args...), pcrs...)...)
	}
	r := verify(list)
	if r.code != 0 || !strings.Contains(r.stdout, "boot_aggregate sha256:"+strings.Repeat("0", 64)+": bypass list adopted by a late TPM: ") ||
		!strings.Contains(r.stdout, "sha256 PCR-10: matched at entry 424 of 424") || !strings.Contains(r.stdout, "PASS: ") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// With a policy made from the list and the adopter's list as evidence.
	pol := filepath.Join(t.TempDir(), "policy.json")
	if r := runCLI(t, nil, "runtime-policy", "create", "--from-log", filepath.Join(adopted, "ascii_runtime_measurements"), "-o", pol); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	r = verify("--json", "--runtime-policy", pol, filepath.Join(adopted, "ascii_runtime_measurements"), "--adopter-list", filepath.Join(adopted, "agent-list"))
	var out struct {
		Verdict       string
		BootAggregate struct{ Verdict, Rule, Note string } `json:"boot_aggregate"`
		Adopter       struct {
			Matched bool
			Record  struct{ Listed int }  `json:"kernel_list_adopted"`
			Boot    struct{ Rule string } `json:"boot_aggregate"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || out.Verdict != "pass" || out.BootAggregate.Verdict != "adopted" ||
		out.BootAggregate.Rule != "bypass list adopted by a late TPM" || !strings.Contains(out.BootAggregate.Note, "boot_aggregate_late") ||
		!out.Adopter.Matched || out.Adopter.Record.Listed != 18 || out.Adopter.Boot.Rule != "pass (pcrs sha256 PCR0-9)" {
		t.Fatalf("exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	// Another boot's agent list is no evidence (exit 1).
	r = verify(list, "--adopter-list", "../../adopt/testdata/realkernel-sha1-sha256-sha384-sha512/agent-list")
	if r.code != exitFailed || !strings.Contains(r.stdout, "NOT evidence") || !strings.Contains(r.stdout, "FAIL: ") {
		t.Fatalf("another boot's agent list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The real bypass list of a boot whose TPM never held it.
	bypass := "../../adopt/testdata/bypass-6.1/binary_runtime_measurements"
	r = verify(bypass)
	if r.code != exitFailed || !strings.Contains(r.stdout, "entry 0 boot_aggregate: ima.validation.ima-ng.runtime_policy_hash") ||
		!strings.Contains(r.stdout, ": fail; TPM-bypass: the kernel had no TPM at boot") {
		t.Fatalf("bypass list not held: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = verify(bypass, "--adopter-list", filepath.Join(adopted, "agent-list")); r.code != exitFailed || !strings.Contains(r.stderr, "not a TPM-bypass list its TPM holds") {
		t.Fatalf("--adopter-list on a list not adopted: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
