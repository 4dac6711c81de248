package main

// The real-process harness: buildImago builds the imago binary once per
// test run (proc_test.go starts it and sends it signals).

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// buildImago returns the path of an imago binary built from this package
// (with -buildvcs=true, so that `imago version` has a revision to show).
// It is built once per test run, into a folder removed by the last test's
// cleanup.
func buildImago(t *testing.T) string {
	t.Helper()
	testenv.SkipShort(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "imago-proc-test")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-buildvcs=true", "-o", filepath.Join(buildDir, "imago"), ".")
		var out []byte
		if out, buildErr = cmd.CombinedOutput(); buildErr != nil {
			buildErr = errors.New(buildErr.Error() + ": " + string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building imago: %v", buildErr)
	}
	return filepath.Join(buildDir, "imago")
}

// TestMain removes the binary buildImago made.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
