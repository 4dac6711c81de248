//go:build linux

package treehash

import (
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
