package realkernel

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

// Kernel returns the newest Debian 6.1 kernel image installed
// (/boot/vmlinuz-6.1*, from linux-image-amd64 on Debian 12).
func Kernel() (string, error) {
	ks, _ := filepath.Glob("/boot/vmlinuz-6.1*")
	if len(ks) == 0 {
		return "", errors.New("realkernel: no /boot/vmlinuz-6.1* (apt-get install linux-image-amd64)")
	}
	slices.SortFunc(ks, func(a, b string) int { return compareVersions(a, b) })
	return ks[len(ks)-1], nil
}

// compareVersions orders kernel image names by their numeric parts.
func compareVersions(a, b string) int {
	num := func(s string) []int {
		var out []int
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(num(a), num(b))
}

// Require checks that a boot can run here: qemu-system-x86_64, a 6.1
// kernel image that can be read, busybox-static, and, with swtpm, swtpm and
// swtpm_setup. What is missing is a testenv.Missing (a failure under CI,
// whose .ci/run installs qemu-system-x86, linux-image-amd64,
// busybox-static, cpio, swtpm).
func Require(tb testing.TB, swtpm bool) {
	tb.Helper()
	testenv.Linux(tb, "booting a kernel under qemu")
	testenv.Tool(tb, "qemu-system-x86_64")
	k, err := Kernel()
	if err != nil {
		testenv.Missing(tb, "linux-image-amd64", "%v", err)
	}
	if f, err := os.Open(k); err != nil {
		testenv.Missing(tb, "root", "%s cannot be read (Debian installs it 0600): %v", k, err)
	} else {
		f.Close()
	}
	if fi, err := os.Stat("/bin/busybox"); err != nil || !fi.Mode().IsRegular() {
		testenv.Missing(tb, "busybox-static", "/bin/busybox not installed")
	}
	if swtpm {
		testenv.Tool(tb, "swtpm")
		testenv.Tool(tb, "swtpm_setup")
		testenv.Tool(tb, "ldd")
	}
}

// BuildImago builds this module's imago with CGO_ENABLED=0 (static, no
// embedded simulator) into a temporary directory of the test and returns its
// path, for Config.Imago. It fails the test if the build fails.
func BuildImago(tb testing.TB) string {
	tb.Helper()
	testenv.Tool(tb, "go")
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("realkernel: cannot find the module's source")
	}
	out := filepath.Join(tb.TempDir(), "imago")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/imago")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("realkernel: CGO_ENABLED=0 go build ./cmd/imago: %v\n%s", err, b)
	}
	return out
}
