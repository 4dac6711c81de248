package fsfacts

import (
	"bytes"
	"fmt"
	"strconv"
)

// Limits on what is parsed.
const (
	// MaxStatus bounds /proc/<pid>/status (a few KiB in practice).
	MaxStatus = 64 << 10
	// MaxSyscall bounds /proc/<tid>/syscall: a number and 8 hex words.
	MaxSyscall = 512
)

// FS is what a policy rule can test about a file's filesystem.
type FS struct {
	// Magic is statfs's f_type (fsmagic=).
	Magic uint64
	// UUID is the superblock's s_uuid (fsuuid=), zero when the
	// filesystem has none or the kernel cannot report it
	// (FS_IOC_GETFSUUID, 6.5+).
	UUID [16]byte
	// Name is the filesystem type's name (fsname=), from mountinfo.
	Name string
}

// Cred is a process's credentials as /proc/<pid>/status shows them (Uid:
// and Gid: lines: real, effective, saved, filesystem) with its thread
// group id.
type Cred struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Tgid                   int
	// CapEff is the effective capability set (CapEff:).
	CapEff uint64
}

// Capability bits (include/uapi/linux/capability.h).
const (
	CapSetGID = 6
	CapSetUID = 7
)

// FormatError is a parse failure with the line (1-based) it is on.
type FormatError struct {
	What string
	Line int
	Msg  string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("fsfacts: %s: line %d: %s", e.What, e.Line, e.Msg)
}

// ParseStatus reads the Tgid:, Uid: and Gid: lines of /proc/<pid>/status.
// All three must be present.
func ParseStatus(b []byte) (Cred, error) {
	var c Cred
	if len(b) > MaxStatus {
		return c, &FormatError{"status", 0, fmt.Sprintf("%d bytes, more than %d", len(b), MaxStatus)}
	}
	var seen int
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "Tgid":
			v, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 31)
			if err != nil {
				return c, &FormatError{"status", n, "bad Tgid"}
			}
			c.Tgid = int(v)
			seen |= 1
		case "CapEff":
			v, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 16, 64)
			if err != nil {
				return c, &FormatError{"status", n, "bad CapEff"}
			}
			c.CapEff = v
		case "Uid", "Gid":
			var ids [4]uint32
			f := bytes.Fields(val)
			if len(f) != 4 {
				return c, &FormatError{"status", n, fmt.Sprintf("%s has %d ids, want 4", key, len(f))}
			}
			for i, s := range f {
				v, err := strconv.ParseUint(string(s), 10, 32)
				if err != nil {
					return c, &FormatError{"status", n, fmt.Sprintf("bad %s id %q", key, s)}
				}
				ids[i] = uint32(v)
			}
			if key[0] == 'U' {
				c.UID, c.EUID, c.SUID, c.FSUID = ids[0], ids[1], ids[2], ids[3]
				seen |= 2
			} else {
				c.GID, c.EGID, c.SGID, c.FSGID = ids[0], ids[1], ids[2], ids[3]
				seen |= 4
			}
		}
	}
	if seen != 7 {
		return c, &FormatError{"status", 0, "Tgid, Uid or Gid line missing"}
	}
	return c, nil
}

// Syscall is /proc/<tid>/syscall: the system call a blocked thread is in
// and its six arguments. Running is set when the thread was running (no
// call to show) and Nr is -1 when it is blocked outside a system call.
type Syscall struct {
	Nr      int64
	Args    [6]uint64
	Running bool
}

// ParseSyscall parses /proc/<tid>/syscall: "running", "-1 SP PC", or
// "NR A1 A2 A3 A4 A5 A6 SP PC" (numbers decimal, words 0x-hex).
func ParseSyscall(b []byte) (Syscall, error) {
	var s Syscall
	if len(b) > MaxSyscall {
		return s, &FormatError{"syscall", 1, fmt.Sprintf("%d bytes, more than %d", len(b), MaxSyscall)}
	}
	f := bytes.Fields(b)
	if len(f) == 1 && string(f[0]) == "running" {
		s.Running, s.Nr = true, -1
		return s, nil
	}
	if len(f) == 0 {
		return s, &FormatError{"syscall", 1, "empty"}
	}
	nr, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return s, &FormatError{"syscall", 1, fmt.Sprintf("bad number %q", f[0])}
	}
	s.Nr = nr
	if nr < 0 {
		if len(f) != 3 {
			return s, &FormatError{"syscall", 1, fmt.Sprintf("%d words, want 3", len(f))}
		}
		return s, nil
	}
	if len(f) != 9 {
		return s, &FormatError{"syscall", 1, fmt.Sprintf("%d words, want 9", len(f))}
	}
	for i := range s.Args {
		w := f[i+1]
		if !bytes.HasPrefix(w, []byte("0x")) {
			return s, &FormatError{"syscall", 1, fmt.Sprintf("argument %d %q is not 0x-hex", i+1, w)}
		}
		v, err := strconv.ParseUint(string(w[2:]), 16, 64)
		if err != nil {
			return s, &FormatError{"syscall", 1, fmt.Sprintf("bad argument %d %q", i+1, w)}
		}
		s.Args[i] = v
	}
	return s, nil
}

// Access is what an open asked for, as the IMA mask= condition names it
// (ima-spec.md §8.3; include/linux/fs.h MAY_*).
type Access uint8

// MAY_* bits.
const (
	MayExec   Access = 0x01
	MayWrite  Access = 0x02
	MayRead   Access = 0x04
	MayAppend Access = 0x08
)

// Open flags (asm-generic; the same on x86-64 and arm64).
const (
	oAccMode = 0x3
	oWronly  = 0x1
	oRdwr    = 0x2
	oAppend  = 0x400
	oCreat   = 0x40
	oTrunc   = 0x200
)

// How says where the open's flags are.
type How uint8

const (
	// HowUnknown: not an open the table knows (io_uring, a kernel worker,
	// an architecture without a table): the access is not known.
	HowUnknown How = iota
	// HowFlags: OpenAccess returned the access from the flags argument.
	HowFlags
	// HowExec: the thread is in execve/execveat (the exec's own open).
	HowExec
	// HowOpenHow: openat2; the flags are the first u64 of the struct
	// open_how at address Addr in the opener's memory.
	HowOpenHow
)

// syscallTable holds the numbers of the calls that open files, per GOARCH.
type syscallTable struct {
	open, openat, creat, openat2, execve, execveat, openByHandle int64
}

var tables = map[string]syscallTable{
	"amd64": {open: 2, openat: 257, creat: 85, openat2: 437, execve: 59, execveat: 322, openByHandle: 304},
	"arm64": {open: -2, openat: 56, creat: -2, openat2: 437, execve: 221, execveat: 281, openByHandle: 265},
	"386":   {open: 5, openat: 295, creat: 8, openat2: 437, execve: 11, execveat: 358, openByHandle: 342},
}

// OpenFlags finds the open(2) flags of the open a thread is blocked in,
// from its system call (arch is a GOARCH). For HowOpenHow the flags are at
// addr in the opener's memory; for HowExec and HowUnknown flags is 0.
func OpenFlags(arch string, s Syscall) (flags uint64, how How, addr uint64) {
	t, ok := tables[arch]
	if !ok || s.Running || s.Nr < 0 {
		return 0, HowUnknown, 0
	}
	switch s.Nr {
	case t.open:
		return s.Args[1], HowFlags, 0
	case t.openat, t.openByHandle:
		return s.Args[2], HowFlags, 0
	case t.creat:
		return oCreat | oWronly | oTrunc, HowFlags, 0
	case t.openat2:
		return 0, HowOpenHow, s.Args[2]
	case t.execve, t.execveat:
		return 0, HowExec, 0
	}
	return 0, HowUnknown, 0
}

// FlagsAccess maps open(2) flags to the mask ima_file_check is given
// (fs/namei.c build_open_flags: ACC_MODE, O_TRUNC adds MAY_WRITE, O_APPEND
// adds MAY_APPEND).
func FlagsAccess(flags uint64) Access {
	var a Access
	switch flags & oAccMode {
	case 0:
		a = MayRead
	case oWronly:
		a = MayWrite
	default:
		a = MayRead | MayWrite
	}
	if flags&oTrunc != 0 {
		a |= MayWrite
	}
	if flags&oAppend != 0 {
		a |= MayAppend
	}
	return a
}

// FlagsWrite reports whether an open with flags gets FMODE_WRITE (counts as
// a writer in i_writecount); FlagsReadOnly whether it counts in i_readcount
// (FMODE_READ without FMODE_WRITE).
func FlagsWrite(flags uint64) bool    { return flags&oAccMode != 0 }
func FlagsReadOnly(flags uint64) bool { return flags&oAccMode == 0 }
