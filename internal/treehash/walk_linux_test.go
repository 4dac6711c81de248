//go:build linux

package treehash

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

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
