//go:build linux

// Package gatetest helps tests run the fanotify gate for real: one skip
// helper (root and fanotify permission events, else a testenv skip), filesystems
// mounted for the test, and a workload shell started before marking, so
// that the test process itself, which may host the agent, never forks or
// execs on a marked filesystem (a child's exec there would wait on its
// own parent).
package gatetest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/internal/testenv"
)

// RequireFanotify skips the test (through testenv) unless it runs as root
// on a kernel with fanotify permission events
// (CONFIG_FANOTIFY_ACCESS_PERMISSIONS) and FAN_OPEN_EXEC_PERM.
func RequireFanotify(tb testing.TB) {
	tb.Helper()
	testenv.Root(tb, "the gate (CAP_SYS_ADMIN for fanotify permission events)")
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_REPORT_TID, unix.O_RDONLY)
	if err != nil {
		testenv.Env(tb, testenv.Kernel, "fanotify permission events unavailable: %v", err)
	}
	defer unix.Close(fd)
	dir := tb.TempDir()
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_EXEC_PERM|unix.FAN_OPEN_PERM, unix.AT_FDCWD, dir); err != nil {
		testenv.Env(tb, testenv.Kernel, "fanotify permission marks unavailable: %v", err)
	}
}

// Mount mounts a fresh filesystem of type fstype (tmpfs, ramfs) on a new
// directory and unmounts it when the test ends (after later cleanups, such
// as stopping an agent that watches it).
func Mount(tb testing.TB, fstype string) string {
	tb.Helper()
	opts := "size=64m,mode=0755"
	if fstype == "ramfs" {
		opts = "mode=0755"
	}
	return MountOpts(tb, fstype, opts)
}

// MountOpts is Mount with the filesystem's mount options ("size=64k" makes
// a tmpfs that fills up for real). It needs root.
func MountOpts(tb testing.TB, fstype, opts string) string {
	tb.Helper()
	testenv.Root(tb, "mounting a "+fstype)
	dir, err := os.MkdirTemp("", "imago-gate-"+fstype)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mount(fstype, dir, fstype, 0, opts); err != nil {
		os.Remove(dir)
		tb.Fatalf("mounting %s: %v", fstype, err)
	}
	tb.Cleanup(func() {
		for i := 0; ; i++ {
			err := unix.Unmount(dir, 0)
			if err == nil || i == 50 {
				if err != nil {
					unix.Unmount(dir, unix.MNT_DETACH)
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		os.Remove(dir)
	})
	return dir
}

// Shell is a workload process (/bin/sh reading commands from a pipe). Start
// it before marking; every open and exec the test wants happens in it or in
// its children.
type Shell struct {
	tb  testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
	seq int
}

// StartShell starts the workload shell; it is stopped when the test ends.
func StartShell(tb testing.TB) *Shell {
	tb.Helper()
	cmd := exec.Command("/bin/sh", "-s")
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	pw.Close()
	s := &Shell{tb: tb, cmd: cmd, in: in, out: bufio.NewReader(pr)}
	tb.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		pr.Close()
	})
	return s
}

// Pid is the shell's process id.
func (s *Shell) Pid() int { return s.cmd.Process.Pid }

// Run runs one shell command line (in the shell itself: `exec 3<file`
// keeps a descriptor open across calls) and returns its output and exit
// status. It fails the test if the shell does not answer in 30 seconds.
func (s *Shell) Run(line string) (string, int) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	mark := fmt.Sprintf("@@done-%d=", s.seq)
	if _, err := fmt.Fprintf(s.in, "%s\necho \"%s$?\"\n", line, mark); err != nil {
		s.tb.Fatalf("shell: %v", err)
	}
	type res struct {
		out string
		rc  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var b strings.Builder
		for {
			l, err := s.out.ReadString('\n')
			if err != nil {
				ch <- res{b.String(), -1, err}
				return
			}
			if rest, ok := strings.CutPrefix(l, mark); ok {
				rc, _ := strconv.Atoi(strings.TrimSpace(rest))
				ch <- res{b.String(), rc, nil}
				return
			}
			b.WriteString(l)
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			s.tb.Fatalf("shell: %q: %v (output %q)", line, r.err, r.out)
		}
		return r.out, r.rc
	case <-time.After(30 * time.Second):
		s.tb.Fatalf("shell: %q did not finish in 30s", line)
	}
	return "", -1
}

// MustRun runs line and fails the test unless it exits 0.
func (s *Shell) MustRun(line string) string {
	s.tb.Helper()
	out, rc := s.Run(line)
	if rc != 0 {
		s.tb.Fatalf("shell: %q exited %d: %s", line, rc, out)
	}
	return out
}

// BreakFanotify makes this process's fanotify groups fail: each fanotify
// descriptor is replaced (dup2) by a directory's, so the gate's next read
// fails (EISDIR) as a broken descriptor would, and the kernel, its group
// released, allows whatever was pending. It returns how many it broke.
func BreakFanotify(tb testing.TB) int {
	tb.Helper()
	dir, err := unix.Open(tb.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer unix.Close(dir)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == "anon_inode:[fanotify]" {
			if err := unix.Dup3(dir, fd, unix.O_CLOEXEC); err != nil {
				tb.Fatal(err)
			}
			n++
		}
	}
	return n
}
