//go:build linux

package xattr

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Get returns the value of the attribute name of path, following symlinks.
func Get(path, name string) ([]byte, error) {
	return get("getxattr", path, name, func(b []byte) (int, error) { return unix.Getxattr(path, name, b) })
}

// LGet is Get for the link itself when path is a symlink.
func LGet(path, name string) ([]byte, error) {
	return get("lgetxattr", path, name, func(b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// FGet is Get on an open file.
func FGet(f *os.File, name string) ([]byte, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("fgetxattr %s %s: %w", f.Name(), name, err)
	}
	var (
		out  []byte
		gerr error
	)
	err = rc.Control(func(fd uintptr) {
		out, gerr = get("fgetxattr", f.Name(), name, func(b []byte) (int, error) { return unix.Fgetxattr(int(fd), name, b) })
	})
	if err != nil {
		return nil, fmt.Errorf("fgetxattr %s %s: %w", f.Name(), name, err)
	}
	return out, gerr
}

// FDGet is Get on a file descriptor, such as a fanotify event's.
func FDGet(fd int, name string) ([]byte, error) {
	return get("fgetxattr", fmt.Sprintf("fd %d", fd), name, func(b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

// get asks for the size, then reads; it retries once if the value grew
// between the calls (ERANGE).
func get(op, path, name string, call func([]byte) (int, error)) ([]byte, error) {
	for range 3 {
		n, err := call(nil)
		if err != nil {
			return nil, wrap(op, path, name, err)
		}
		if n > MaxSize {
			return nil, fmt.Errorf("%s %s %s: value of %d bytes exceeds %d", op, path, name, n, MaxSize)
		}
		if n == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, wrap(op, path, name, err)
		}
		return buf[:n], nil
	}
	return nil, fmt.Errorf("%s %s %s: value keeps changing size", op, path, name)
}

// Set writes the attribute name of path (following symlinks), creating or
// replacing it.
func Set(path, name string, value []byte) error {
	if err := unix.Setxattr(path, name, value, 0); err != nil {
		return wrap("setxattr", path, name, err)
	}
	return nil
}

// Remove deletes the attribute name of path; an absent one is not an error.
func Remove(path, name string) error {
	err := unix.Removexattr(path, name)
	if err == nil || errors.Is(err, unix.ENODATA) {
		return nil
	}
	return wrap("removexattr", path, name, err)
}

func wrap(op, path, name string, err error) error {
	switch {
	case errors.Is(err, unix.ENODATA):
		return fmt.Errorf("%s %s: %w", path, name, ErrNoData)
	case errors.Is(err, unix.ENOTSUP):
		return fmt.Errorf("%s %s %s: %w: %w", op, path, name, errors.ErrUnsupported, err)
	}
	return &os.PathError{Op: op + " " + name, Path: path, Err: err}
}
