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

	"github.com/imago-ima/imago/internal/testenv"
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
	out, err := exec.Command(testenv.Tool(t, "stat"), "-f", "-c", "%t %T", "/").Output()
	if err != nil {
		t.Fatalf("stat -f: %v", err)
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
	testenv.Root(t, "leases on another's file (CAP_LEASE)")
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("x"), 0o644)
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if w, ok := OpenForWrite(int(r.Fd())); !ok || w {
		testenv.Env(t, testenv.Kernel, "leases unavailable here (ok=%v writers=%v; fs.leases-enable=0?)", ok, w)
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

// TestReadFSDeviceReused: an anonymous device number (tmpfs, ramfs) is
// given to the next filesystem mounted once its filesystem is unmounted,
// so ReadFS must not answer from what an earlier filesystem with the same
// st_dev was. The magics are linux/magic.h's RAMFS_MAGIC and TMPFS_MAGIC.
func TestReadFSDeviceReused(t *testing.T) {
	testenv.Root(t, "mounting a ramfs and a tmpfs")
	const ramfsMagic, tmpfsMagic = 0x858458f6, 0x01021994
	reused := false
	for i := 0; i < 10 && !reused; i++ {
		var devs [2]uint64
		for j, fstype := range []string{"ramfs", "tmpfs"} {
			dir := t.TempDir()
			if err := unix.Mount(fstype, dir, fstype, 0, "mode=0755"); err != nil {
				t.Fatalf("mounting %s: %v", fstype, err)
			}
			f, err := os.Open(dir)
			if err != nil {
				unix.Unmount(dir, unix.MNT_DETACH)
				t.Fatal(err)
			}
			var st unix.Stat_t
			err = unix.Fstat(int(f.Fd()), &st)
			var fs FS
			if err == nil {
				fs, err = ReadFS(int(f.Fd()), st.Dev)
			}
			f.Close()
			if uerr := unix.Unmount(dir, 0); uerr != nil {
				unix.Unmount(dir, unix.MNT_DETACH)
			}
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(ramfsMagic)
			if fstype == "tmpfs" {
				want = tmpfsMagic
			}
			if fs.Magic != want || fs.Name != fstype {
				t.Fatalf("%s (dev %d:%d, reused: %v): ReadFS says magic %#x name %q, want %#x %q",
					fstype, unix.Major(st.Dev), unix.Minor(st.Dev), j == 1 && st.Dev == devs[0], fs.Magic, fs.Name, want, fstype)
			}
			devs[j] = st.Dev
		}
		reused = devs[0] == devs[1]
	}
	if !reused {
		t.Log("the device number was never reused; the test proved nothing this time")
	}
}
