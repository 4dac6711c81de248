package testfixture

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProvenance: every fixture folder of testdata/public and
// testdata/realkernel has a PROVENANCE file that lists each of its files
// with the sha256 of its bytes, and nothing else.
func TestProvenance(t *testing.T) {
	var folders []string
	for _, pattern := range []string{"public/*", "realkernel/*"} {
		for _, d := range Glob(t, pattern) {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				folders = append(folders, d)
			}
		}
	}
	if len(folders) < 11+17 {
		t.Fatalf("%d fixture folders, want at least %d", len(folders), 11+17)
	}
	for _, d := range folders {
		rel, _ := filepath.Rel(Dir(t), d)
		t.Run(rel, func(t *testing.T) {
			listed := map[string]string{}
			f, err := os.Open(filepath.Join(d, "PROVENANCE"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			header := 0
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "#") {
					header++
					continue
				}
				cols := strings.Split(line, "\t")
				if len(cols) < 2 {
					t.Fatalf("PROVENANCE: bad line %q", line)
				}
				// file <tab> sha256, or file <tab> origin <tab> licence <tab> sha256 <tab> note
				sum := cols[1]
				if len(cols) >= 4 {
					sum = cols[3]
				}
				listed[cols[0]] = sum
			}
			if header < 3 {
				t.Errorf("PROVENANCE has no header naming origin and licence")
			}
			seen := 0
			err = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() || e.Name() == "PROVENANCE" {
					return err
				}
				name, _ := filepath.Rel(d, p)
				name = filepath.ToSlash(name)
				want, ok := listed[name]
				if !ok {
					t.Errorf("%s is not in PROVENANCE", name)
					return nil
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != want {
					t.Errorf("%s: sha256 %x, PROVENANCE says %s", name, got, want)
				}
				seen++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if seen != len(listed) {
				t.Errorf("PROVENANCE lists %d files, the folder holds %d", len(listed), seen)
			}
		})
	}
}

// TestChildMissing is run by TestMissingFails in a child process.
func TestChildMissing(t *testing.T) {
	switch os.Getenv("TESTFIXTURE_CHILD") {
	case "path":
		Path(t, "no/such/fixture")
	case "glob":
		Glob(t, "no/such/*")
	default:
		return
	}
	t.Log("after the lookup")
}

// TestMissingFails: a missing fixture fails the test, with CI or without;
// it never skips.
func TestMissingFails(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"path", "glob"} {
		for _, ci := range []string{"false", "true"} {
			cmd := exec.Command(exe, "-test.run=^TestChildMissing$", "-test.v")
			cmd.Env = append(os.Environ(), "TESTFIXTURE_CHILD="+what, "CI="+ci)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "--- FAIL: TestChildMissing") {
				t.Errorf("%s, CI=%s: the child did not fail:\n%s", what, ci, out)
			}
			if strings.Contains(string(out), "SKIP") || strings.Contains(string(out), "after the lookup") {
				t.Errorf("%s, CI=%s: skipped or went on:\n%s", what, ci, out)
			}
		}
	}
}

func TestRoot(t *testing.T) {
	if _, err := os.Stat(filepath.Join(Root(t), "go.mod")); err != nil {
		t.Fatal(err)
	}
	if got := Read(t, "realkernel/a-ima-ng/runtime_measurements_count"); strings.TrimSpace(string(got)) != "16" {
		t.Errorf("a-ima-ng count %q", got)
	}
}
