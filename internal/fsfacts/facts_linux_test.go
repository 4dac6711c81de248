//go:build linux

package fsfacts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadFS: the magic is what stat -f reports for the filesystem, the
// name what /proc/self/mountinfo says of the root.
func TestReadFS(t *testing.T) {
	f, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	fs, err := ReadFS(int(f.Fd()), st.Dev)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("stat", "-f", "-c", "%t %T", "/").Output()
	if err != nil {
		t.Skipf("stat -f: %v", err)
	}
	hexType, name, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if want, _ := strconv.ParseUint(hexType, 16, 64); fs.Magic != want {
		t.Errorf("magic %#x, stat -f says %#x", fs.Magic, want)
	}
	if fs.Name == "" || !strings.HasPrefix(name, fs.Name[:min(len(fs.Name), 3)]) {
		t.Errorf("name %q, stat -f says %q", fs.Name, name)
	}
}

// TestOpenForWrite: a read lease is refused exactly while a writer holds
// the file.
func TestOpenForWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("leases on another's file need CAP_LEASE; run as root")
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("x"), 0o644)
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if w, ok := OpenForWrite(int(r.Fd())); !ok || w {
		t.Skipf("leases unavailable here (ok=%v writers=%v)", ok, w)
	}
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if writers, ok := OpenForWrite(int(r.Fd())); !ok || !writers {
		t.Errorf("with a writer open: writers=%v ok=%v", writers, ok)
	}
	w.Close()
	if writers, ok := OpenForWrite(int(r.Fd())); !ok || writers {
		t.Errorf("after the writer closed: writers=%v ok=%v", writers, ok)
	}
}

func TestReadCred(t *testing.T) {
	c, err := ReadCred(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if int(c.UID) != os.Getuid() || int(c.EGID) != os.Getegid() || c.Tgid != os.Getpid() {
		t.Errorf("%+v: uid %d egid %d pid %d", c, os.Getuid(), os.Getegid(), os.Getpid())
	}
}
