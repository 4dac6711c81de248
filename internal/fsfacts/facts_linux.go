//go:build linux

package fsfacts

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReadFS returns the facts of the filesystem holding fd, whose st_dev is dev.
// It reads them every time: a caller may keep them per device only while
// the filesystem cannot go away (its events come through a mark on it), as
// an anonymous device number (tmpfs, ramfs, ...) is given to the next
// filesystem mounted once this one is unmounted.
func ReadFS(fd int, dev uint64) (FS, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return FS{}, fmt.Errorf("fsfacts: fstatfs: %w", err)
	}
	return FS{Magic: uint64(sfs.Type), UUID: fsUUID(fd), Name: fsName(dev)}, nil
}

// fsIocGetFSUUID is _IOR(0x15, 0, struct fsuuid2 {u8 len; u8 uuid[16]}).
const fsIocGetFSUUID = 2<<30 | 17<<16 | 0x15<<8

func fsUUID(fd int) (u [16]byte) {
	var buf [17]byte
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocGetFSUUID, uintptr(unsafe.Pointer(&buf[0])))
	if e != 0 || buf[0] != 16 {
		return u
	}
	copy(u[:], buf[1:])
	return u
}

// fsName finds the type of the mount whose major:minor is dev in
// /proc/self/mountinfo (field 3 is major:minor, the field after " - " is
// the type).
func fsName(dev uint64) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	want := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[2] != want {
			continue
		}
		if _, rest, ok := strings.Cut(line, " - "); ok {
			if t := strings.Fields(rest); len(t) > 0 {
				return t[0]
			}
		}
	}
	return ""
}

// readSmall reads a small /proc file into buf.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// ReadCred reads the credentials of thread tid from /proc/<tid>/status.
func ReadCred(tid int) (Cred, error) {
	var buf [4096]byte
	b, err := readSmall("/proc/"+strconv.Itoa(tid)+"/status", buf[:])
	if err != nil {
		return Cred{}, fmt.Errorf("fsfacts: %w", err)
	}
	return ParseStatus(b)
}

// ProcLabel returns thread tid's LSM label (/proc/<tid>/attr/current), ""
// when no LSM provides one.
func ProcLabel(tid int) string {
	var buf [512]byte
	b, err := readSmall("/proc/"+strconv.Itoa(tid)+"/attr/current", buf[:])
	if err != nil {
		return ""
	}
	return string(bytes.TrimRight(b, "\x00\n"))
}

// FileLabel returns the file's security.selinux label, "" when it has none.
func FileLabel(fd int) string {
	var buf [256]byte
	n, err := unix.Fgetxattr(fd, "security.selinux", buf[:])
	if err != nil || n <= 0 {
		return ""
	}
	return string(bytes.TrimRight(buf[:n], "\x00"))
}

// ErrAccessUnknown: the open's flags could not be recovered.
var ErrAccessUnknown = errors.New("fsfacts: the open's flags are not known")

// ReadOpenFlags recovers the open(2) flags of the open thread tid is blocked
// in (it waits for a fanotify permission answer, so its /proc/<tid>/syscall
// is stable). how is HowExec for an exec's own open; ErrAccessUnknown when
// the call is not an open the table knows.
func ReadOpenFlags(tid int) (flags uint64, how How, err error) {
	var buf [MaxSyscall]byte
	b, err := readSmall("/proc/"+strconv.Itoa(tid)+"/syscall", buf[:])
	if err != nil {
		return 0, HowUnknown, fmt.Errorf("fsfacts: %w", err)
	}
	s, err := ParseSyscall(b)
	if err != nil {
		return 0, HowUnknown, err
	}
	flags, how, addr := OpenFlags(runtime.GOARCH, s)
	switch how {
	case HowUnknown:
		return 0, how, ErrAccessUnknown
	case HowOpenHow:
		fd, err := unix.Open("/proc/"+strconv.Itoa(tid)+"/mem", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, HowUnknown, fmt.Errorf("%w: %v", ErrAccessUnknown, err)
		}
		defer unix.Close(fd)
		var w [8]byte
		if n, err := unix.Pread(fd, w[:], int64(addr)); err != nil || n != 8 {
			return 0, HowUnknown, fmt.Errorf("%w: reading open_how: %v", ErrAccessUnknown, err)
		}
		return binary.NativeEndian.Uint64(w[:]), HowFlags, nil
	}
	return flags, how, nil
}

// OpenForWrite reports whether anyone has the file behind fd open for
// write, as the kernel counts it (i_writecount > 0): a read lease is
// refused exactly then (fs/locks.c check_conflicting_open). fd must be
// read-only. ok is false when the filesystem or the system refuses leases
// for another reason (/proc/sys/fs/leases-enable, a filesystem without
// leases), and the answer is then unknown.
func OpenForWrite(fd int) (writers, ok bool) {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch err {
	case nil:
		unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		return false, true
	case unix.EAGAIN:
		return true, true
	}
	return false, false
}
