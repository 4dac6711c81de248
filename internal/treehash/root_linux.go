//go:build linux

package treehash

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sysRoot is the root directory, open: files are opened relative to it.
type sysRoot struct {
	fd     int
	fsType int64 // statfs f_type
}

func openRoot(root string) (sysRoot, error) {
	fd, err := openat(unix.AT_FDCWD, root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return sysRoot{}, &Error{"/", err}
	}
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		unix.Close(fd)
		return sysRoot{}, &Error{"/", err}
	}
	return sysRoot{fd: fd, fsType: int64(s.Type)}, nil
}

func (r sysRoot) close() { unix.Close(r.fd) }

// openat is openat(2), retried when a signal interrupts it.
func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// noOpenat2 is set once openat2(2) is found missing (Linux before 5.6).
var noOpenat2 atomic.Bool

// openBeneath opens rel (a path relative to the root, without a leading
// '/') under the root's descriptor, refusing a symlink in any of its
// components (openat2 RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH): the walk does
// not follow symlinks, and a directory swapped for a symlink since cannot
// lead the hash out of the tree. Without openat2, openat with flags (its
// O_NOFOLLOW guards the last component only).
func openBeneath(root int, rel string, flags int) (int, error) {
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH}
		for range 16 { // EAGAIN: a rename raced the lookup
			fd, err := unix.Openat2(root, rel, &how)
			switch err {
			case unix.EINTR, unix.EAGAIN:
				continue
			case unix.ENOSYS, unix.EPERM: // EPERM: a seccomp filter that does not know openat2
				noOpenat2.Store(true)
			default:
				return fd, err
			}
			break
		}
	}
	return openat(root, rel, flags)
}
