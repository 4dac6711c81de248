package imago_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// The pure core (formats, replay, boot aggregate, policy) does no I/O: it
// imports neither the OS, the network, processes, clocks nor logging, so it
// gives the same answer for the same bytes on every machine. This test reads
// each pure package's direct imports and fails on a forbidden one.
var purePackages = []string{"ima", "ima/digsig", "pcr", "eventlog", "bootagg", "replay", "policy", "internal/sm3", "runtimepolicy", "verify"}

var forbidden = map[string]bool{
	"os": true, "os/exec": true, "os/signal": true, "net": true, "net/http": true,
	"syscall": true, "golang.org/x/sys/unix": true, "time": true, "log": true,
	"log/slog": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true,
	"io/ioutil": true, "path/filepath": true,
}

func TestPureCoreImports(t *testing.T) {
	for _, p := range purePackages {
		out, err := exec.Command("go", "list", "-json", "./"+p).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "no Go files") {
				t.Logf("%s: no Go files yet", p)
				continue
			}
			t.Fatalf("go list ./%s: %v", p, err)
		}
		var info struct{ Imports []string }
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatal(err)
		}
		for _, imp := range info.Imports {
			if forbidden[imp] {
				t.Errorf("pure package %s imports %s", p, imp)
			}
		}
	}
}
