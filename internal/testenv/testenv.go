// Package testenv is the one place where a test says that it cannot run
// here, and why. There are two kinds of reasons:
//
//   - Missing: something the tests need and CI installs (a tool such as
//     swtpm or evmctl, root, cgo, a PostgreSQL server, Chromium). On a
//     developer's machine the test skips with a line that `make test`
//     lists; where CI=true it fails, because CI promised to provide it.
//   - Env: a limit of the machine that no install fixes (a kernel too old
//     for an ioctl, -short). These skip everywhere and are the short list
//     of environment skips that CI accepts; each has a fixed reason.
//
// Every skip message starts with "testenv: " so that `make test` can find
// them in `go test -json` output; a skip without that prefix (a bare
// t.Skip) fails CI.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// Prefix starts every skip message this package writes.
const Prefix = "testenv: "

// EnvReason is an environment limit that CI accepts as a reason to skip.
type EnvReason string

// The short list of environment skips. Adding one needs a reason that no
// package install on CI's fresh Debian machine can remove.
const (
	// Short: the test is long and -short was given.
	Short EnvReason = "short"
	// Kernel: the running kernel lacks a feature (named in the detail).
	Kernel EnvReason = "kernel"
	// ToolVersion: the installed version of an oracle tool is known to be
	// wrong on this input (named in the detail, with the version).
	ToolVersion EnvReason = "tool-version"
)

// EnvReasons lists the accepted environment reasons with why each is one.
var EnvReasons = map[EnvReason]string{
	Short:       "-short asks to leave long tests out",
	Kernel:      "the running kernel lacks a feature; no package install adds it",
	ToolVersion: "the distribution's oracle tool has a known bug on this input",
}

// CI reports whether the tests run under CI (CI=true), where every
// required component is installed and a missing one is a failure.
func CI() bool { return os.Getenv("CI") == "true" }

// Env skips the test for an environment limit on the short list.
func Env(tb testing.TB, reason EnvReason, format string, args ...any) {
	tb.Helper()
	if _, ok := EnvReasons[reason]; !ok {
		tb.Fatalf("testenv: %q is not an environment reason", reason)
	}
	tb.Skipf("%senv[%s]: %s", Prefix, reason, fmt.Sprintf(format, args...))
}

// SkipShort skips a long test under -short.
func SkipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		Env(tb, Short, "long test")
	}
}

// Missing reports a requirement that is not here: a skip on a developer's
// machine, a failure under CI.
func Missing(tb testing.TB, what, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf("%smissing[%s]: %s", Prefix, what, fmt.Sprintf(format, args...))
	if CI() {
		tb.Fatal(msg + " (CI installs it: this is a failure)")
	}
	tb.Skip(msg)
}

// Tool returns the path of an external program the test needs, or calls
// Missing.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, name, "%s not installed", name)
	}
	return p
}

// Root calls Missing unless the test runs as root.
func Root(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, "root", "%s needs root", why)
	}
}

// Linux calls Missing unless the test runs on Linux.
func Linux(tb testing.TB, why string) {
	tb.Helper()
	if runtime.GOOS != "linux" {
		Missing(tb, "linux", "%s needs Linux", why)
	}
}
