package fsfacts

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		file             string
		uid, euid, gid   uint32
		capSetUID, check bool
	}{
		{"testdata/status-uid1000-gid1001.txt", 1000, 1000, 1001, false, true},
		{"testdata/status-root.txt", 0, 0, 0, true, true},
	} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseStatus(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if c.UID != tc.uid || c.EUID != tc.euid || c.GID != tc.gid || c.EGID != tc.gid || c.Tgid == 0 {
			t.Errorf("%s: %+v", tc.file, c)
		}
		if got := c.CapEff&(1<<CapSetUID) != 0; got != tc.capSetUID {
			t.Errorf("%s: CAP_SETUID %v, want %v", tc.file, got, tc.capSetUID)
		}
	}
	for _, bad := range []string{
		"",
		"Tgid:\t1\nUid:\t1 2 3\nGid:\t0 0 0 0\n",
		"Tgid:\tx\nUid:\t0 0 0 0\nGid:\t0 0 0 0\n",
		"Tgid:\t1\nUid:\t0 0 0 0\n",
		"Tgid:\t1\nUid:\t0 0 0 99999999999\nGid:\t0 0 0 0\n",
		strings.Repeat("x", MaxStatus+1),
	} {
		_, err := ParseStatus([]byte(bad))
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("ParseStatus(%.40q): %v, want a FormatError", bad, err)
		}
	}
}

func TestParseSyscall(t *testing.T) {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s, err := ParseSyscall(read("testdata/syscall-openat-append.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Nr != 257 || s.Args[0] != 0xffffff9c || s.Args[2] != 0x441 {
		t.Errorf("openat: %+v", s)
	}
	flags, how, _ := OpenFlags("amd64", s)
	if how != HowFlags || flags != 0x441 {
		t.Errorf("OpenFlags: %#x %v", flags, how)
	}
	if a := FlagsAccess(flags); a != MayWrite|MayAppend {
		t.Errorf("FlagsAccess(O_WRONLY|O_CREAT|O_APPEND) = %#x, want MAY_WRITE|MAY_APPEND", a)
	}
	s, err = ParseSyscall(read("testdata/syscall-sleep.txt"))
	if err != nil || s.Nr != 230 {
		t.Errorf("sleep: %+v %v", s, err)
	}
	if _, how, _ := OpenFlags("amd64", s); how != HowUnknown {
		t.Errorf("clock_nanosleep is not an open: %v", how)
	}
	s, err = ParseSyscall(read("testdata/syscall-running.txt"))
	if err != nil || !s.Running {
		t.Errorf("running: %+v %v", s, err)
	}
	if s, err := ParseSyscall([]byte("-1 0x7ffc 0x7f00\n")); err != nil || s.Nr != -1 {
		t.Errorf("blocked outside a call: %+v %v", s, err)
	}
	for _, bad := range []string{"", "x", "257 0x1", "257 1 2 3 4 5 6 7 8", "-1 0x1", "257 0x1 0x2 0x3 0x4 0x5 0xzz 0x7 0x8"} {
		if _, err := ParseSyscall([]byte(bad)); err == nil {
			t.Errorf("ParseSyscall(%q) succeeded", bad)
		}
	}
}

// TestFlagsAccess follows fs/namei.c build_open_flags: ACC_MODE is
// "\004\002\006\006"[flags & O_ACCMODE], O_TRUNC adds MAY_WRITE, O_APPEND
// adds MAY_APPEND; FMODE_WRITE follows O_ACCMODE alone.
func TestFlagsAccess(t *testing.T) {
	for _, tc := range []struct {
		flags    uint64
		acc      Access
		write    bool
		readOnly bool
	}{
		{0, MayRead, false, true},
		{oWronly, MayWrite, true, false},
		{oRdwr, MayRead | MayWrite, true, false},
		{3, MayRead | MayWrite, true, false},
		{oTrunc, MayRead | MayWrite, false, true},
		{oAppend, MayRead | MayAppend, false, true},
		{oWronly | oAppend | oCreat, MayWrite | MayAppend, true, false},
	} {
		if a := FlagsAccess(tc.flags); a != tc.acc {
			t.Errorf("FlagsAccess(%#o) = %#x, want %#x", tc.flags, a, tc.acc)
		}
		if FlagsWrite(tc.flags) != tc.write || FlagsReadOnly(tc.flags) != tc.readOnly {
			t.Errorf("%#o: write %v read-only %v", tc.flags, FlagsWrite(tc.flags), FlagsReadOnly(tc.flags))
		}
	}
	// The syscall table: open(2) has flags second, creat(2) implies them,
	// openat2(2) points at struct open_how, execve is an exec.
	for _, tc := range []struct {
		arch  string
		nr    int64
		flags uint64
		how   How
	}{
		{"amd64", 2, 0x241, HowFlags},
		{"amd64", 85, oCreat | oWronly | oTrunc, HowFlags},
		{"amd64", 437, 0, HowOpenHow},
		{"amd64", 59, 0, HowExec},
		{"arm64", 56, 0x241, HowFlags},
		{"arm64", 221, 0, HowExec},
		{"riscv64", 56, 0, HowUnknown},
	} {
		s := Syscall{Nr: tc.nr, Args: [6]uint64{0x241, 0x241, 0x241}}
		flags, how, _ := OpenFlags(tc.arch, s)
		if how != tc.how || flags != tc.flags {
			t.Errorf("%s %d: %#x %v, want %#x %v", tc.arch, tc.nr, flags, how, tc.flags, tc.how)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, p := range []string{"testdata/status-root.txt", "testdata/status-uid1000-gid1001.txt"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseStatus(b)
		if err == nil && c.Tgid < 0 {
			t.Fatalf("negative tgid %d", c.Tgid)
		}
	})
}

func FuzzParseSyscall(f *testing.F) {
	for _, p := range []string{"testdata/syscall-openat-append.txt", "testdata/syscall-sleep.txt", "testdata/syscall-running.txt"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSyscall(b)
		if err != nil {
			return
		}
		for _, arch := range []string{"amd64", "arm64", "386"} {
			flags, how, _ := OpenFlags(arch, s)
			if how != HowFlags && flags != 0 {
				t.Fatalf("flags %#x without HowFlags", flags)
			}
			_ = FlagsAccess(flags)
		}
	})
}
