//go:build linux

package treehash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
)

// FIFOs are not opened (a FIFO without a writer would block), and a
// directory where a filesystem of another type is mounted is not entered
// (keylime-policy's match_rootfs), while one of the same type is.
func TestWalkSkips(t *testing.T) {
	testenv.Root(t, "mounting a filesystem in the tree")
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "mnt2", "same"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "usr/bin/a"), []byte("a"), 0o644)
	if err := unix.Mkfifo(filepath.Join(root, "usr/bin/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var s unix.Statfs_t
	if err := unix.Statfs(root, &s); err != nil {
		t.Fatal(err)
	}
	other := "tmpfs"
	if s.Type == unix.TMPFS_MAGIC {
		other = "ramfs"
	}
	mount := func(dir, fstype string) {
		if err := unix.Mount(fstype, dir, fstype, 0, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", fstype, dir, err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	}
	mount(filepath.Join(root, "mnt2"), other)
	os.WriteFile(filepath.Join(root, "mnt2/hidden"), []byte("another filesystem"), 0o644)
	if s.Type == unix.TMPFS_MAGIC {
		mount(filepath.Join(root, "same"), "tmpfs")
	} else {
		os.MkdirAll(filepath.Join(root, "same"), 0o755)
	}
	os.WriteFile(filepath.Join(root, "same/kept"), []byte("same type"), 0o644)
	got, errs, err := Hash(context.Background(), root, Options{Alg: ima.HashSHA256})
	if err != nil || len(errs) != 0 {
		t.Fatal(err, errs)
	}
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Path)
	}
	if want := []string{"/same/kept", "/usr/bin/a"}; !slices.Equal(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
}

// Hashing leaves a file's access time as it was (O_NOATIME, allowed to the
// file's owner and to root), where a read would have moved it (relatime:
// an access time older than the modification time).
func TestHashKeepsAtime(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"small", "big"} {
		p := filepath.Join(root, n)
		size := 100
		if n == "big" {
			size = bigSize + 1
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		atime, mtime := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(p, atime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if _, errs, err := Hash(context.Background(), root, Options{Alg: ima.HashSHA256, AllOwners: true}); err != nil || len(errs) != 0 {
		t.Fatal(err, errs)
	}
	for _, n := range []string{"small", "big"} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(root, n), &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(st.Atim.Unix()); got.Year() != 2001 {
			t.Errorf("%s: access time %v after hashing, want 2001", n, got)
		}
	}
}

// A path under the root with a symlink in it (a directory swapped for a
// symlink since the walk) does not open where openat2 is there.
func TestOpenBeneath(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(root, "d"), 0o755)
	os.WriteFile(filepath.Join(root, "d/f"), []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(root, "link"))
	r, err := openRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	fd, err := openBeneath(r.fd, "d/f", unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		t.Fatalf("d/f: %v", err)
	}
	unix.Close(fd)
	fd, err = openBeneath(r.fd, "link/secret", unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if noOpenat2.Load() {
		testenv.Env(t, testenv.Kernel, "no openat2 (Linux < 5.6): only the last component is guarded")
	}
	if err == nil {
		unix.Close(fd)
		t.Fatal("link/secret opened through a symlink")
	}
}

// A file read without fstat (smaller than the read buffer when the walk
// saw it) is hashed as it is now when it changed since the walk, and one
// that is no longer a regular file is an error, not bytes: the read that
// gives other than the walk's size falls back to fstat.
func TestHashChangedSinceWalk(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("now eleven!"), 0o644)
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := rootReader(t, root)
	var stop atomic.Bool
	want := sha256.Sum256([]byte("now eleven!"))
	for _, walked := range []int64{0, 5, 11, 12, ReadSize - 1, ReadSize, bigSize} { // shrunk, grown, as walked, ...
		h := sha256.New()
		n, err := r.hash("", "f", walked, h, &stop, nil)
		if err != nil || n != 11 || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("walked as %d bytes: %d bytes, %v, digest %x", walked, n, err, h.Sum(nil))
		}
	}
	for _, name := range []string{"fifo", "dir"} {
		for _, walked := range []int64{0, 7} {
			if _, err := r.hash("", name, walked, sha256.New(), &stop, nil); !errors.Is(err, errNotRegular) {
				t.Errorf("%s walked as a %d-byte file: %v, want errNotRegular", name, walked, err)
			}
		}
	}
}

// A character device put in a small file's place since the walk (here
// /dev/zero's numbers: endless zeros, more than the walk's size) is an
// error, not a digest of its first bytes.
func TestHashDeviceSinceWalk(t *testing.T) {
	testenv.Root(t, "making a device node")
	root := t.TempDir()
	if err := unix.Mknod(filepath.Join(root, "zero"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	r := rootReader(t, root)
	var stop atomic.Bool
	if _, err := r.hash("", "zero", 7, sha256.New(), &stop, nil); !errors.Is(err, errNotRegular) {
		t.Errorf("a device walked as a 7-byte file: %v, want errNotRegular", err)
	}
}

// rootReader is a worker's reader of the tree at root, closed with the test.
func rootReader(t *testing.T, root string) *reader {
	sys, err := openRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	r := (&tree{sys: sys}).newReader()
	t.Cleanup(func() {
		r.close()
		sys.close()
	})
	return r
}
