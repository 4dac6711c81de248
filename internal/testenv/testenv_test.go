package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestEnvSkips(t *testing.T) {
	var ran bool
	t.Run("env", func(t *testing.T) {
		Env(t, Kernel, "no FS_IOC_GETFSUUID before 6.5")
		ran = true
	})
	if ran {
		t.Fatal("Env did not stop the test")
	}
}

// TestChildMissingTool is run by TestMissing in a child process.
func TestChildMissingTool(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "1" {
		return
	}
	Tool(t, "imago-no-such-tool")
	t.Log("after Tool")
}

func TestMissing(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{{"false", false}, {"true", true}} {
		cmd := exec.Command(exe, "-test.run=^TestChildMissingTool$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		failed := err != nil
		if failed != tc.wantFail {
			t.Errorf("CI=%s: failed=%v, want %v\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), Prefix+"missing[imago-no-such-tool]") {
			t.Errorf("CI=%s: no testenv message\n%s", tc.ci, out)
		}
		if strings.Contains(string(out), "after Tool") {
			t.Errorf("CI=%s: the test went on after Tool", tc.ci)
		}
	}
}
