package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// TestAgentCLIAdopt runs `imago agent --adopt-kernel-list` on a securityfs
// stand-in holding a real bypass list, makes the TPM appear, and checks
// `imago status` (text and JSON) and `imago log check --adopter-list`.
func TestAgentCLIAdopt(t *testing.T) {
	testenv.Tool(t, "swtpm")
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	sfs := t.TempDir()
	data, err := os.ReadFile("../../adopt/testdata/bypass-6.1/binary_runtime_measurements")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(sfs, "ima"), 0o755)
	kernel := filepath.Join(sfs, "ima", "binary_runtime_measurements")
	os.WriteFile(kernel, data, 0o644)
	os.WriteFile(filepath.Join(sfs, "ima", "runtime_measurements_count"), []byte("16\n"), 0o644)
	dirs, _, socket := agentDirs(t)
	startAgentCLI(t, socket, append(dirs, "--tpm", s.URI, "--tpm-wait", "1h", "--adopt-kernel-list",
		"--adopt-interval", "20ms", "--securityfs", sfs)...)
	r := runCLI(t, nil, "status", "--socket", socket)
	if !strings.Contains(r.stdout, "pcr:       11\n") || !strings.Contains(r.stdout, "adoption:  waiting\n") {
		t.Fatalf("status before the TPM:\n%s", r.stdout)
	}
	s.Start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = runCLI(t, nil, "status", "--socket", socket, "--json")
		var st struct {
			State    string
			Adoption struct {
				State      string
				Adopted    int
				AppearedAt *int `json:"appeared_at"`
			}
		}
		json.Unmarshal([]byte(r.stdout), &st)
		if st.Adoption.State == "following" && st.Adoption.Adopted == 16 && st.State == "initialised" {
			if st.Adoption.AppearedAt == nil || *st.Adoption.AppearedAt != 16 {
				t.Fatalf("status --json:\n%s", r.stdout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no adoption:\n%s", r.stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r = runCLI(t, nil, "status", "--socket", socket)
	if !strings.Contains(r.stdout, "adopted:     16 of 16 listed (0 violations)") || !strings.Contains(r.stdout, "appeared at: 16 (entries 1-16") {
		t.Fatalf("status:\n%s", r.stdout)
	}
	pcrs := filepath.Join(t.TempDir(), "pcrs.json")
	r = runCLI(t, nil, "tpm", "pcrread", "--tpm", s.URI, "--json")
	os.WriteFile(pcrs, []byte(r.stdout), 0o644)
	own := filepath.Join(dirs[1], "binary_runtime_measurements")
	r = runCLI(t, nil, "log", "check", kernel, "--pcrs", pcrs, "--adopter-list", own)
	if r.code != 0 || !strings.Contains(r.stdout, "bypass list adopted by a late TPM") ||
		!strings.Contains(r.stdout, "kernel_list_adopted: the TPM appeared when the kernel had listed 16 entries") ||
		!strings.Contains(r.stdout, "boot_aggregate_late sha256:") {
		t.Fatalf("log check --adopter-list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The agent's list is no evidence for a list it did not adopt.
	r = runCLI(t, nil, "log", "check", "../../testdata/realkernel/b-ima-sig/binary_runtime_measurements",
		"--pcrs", "sha256,../../testdata/realkernel/b-ima-sig/pcrs-sha256.txt", "--adopter-list", own)
	if r.code != exitFailed || !strings.Contains(r.stderr, "not a TPM-bypass list") {
		t.Fatalf("--adopter-list on a list with a TPM: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestAgentCLIAdoptUsage(t *testing.T) {
	dirs, _, _ := agentDirs(t)
	for _, args := range [][]string{
		{"agent", "--adopt-kernel-list", "--pcr", "10"},
		{"agent", "--adopt-kernel-list", "--tpm", "none"},
		{"agent", "--adopt-kernel-list", "--tpm", "sim"},
		{"agent", "--adopt-kernel-list", "--adopt-interval", "0s"},
	} {
		if r := runCLI(t, nil, append(args, dirs...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
}
