//go:build linux

package main

// Tests that run the imago binary as a real process: signals, pipes, FIFOs,
// process substitution. buildImago builds it once per test binary run.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
)

// proc is one running imago.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
	ready          string // created by imago once it handles signals
}

// signal sends sig once imago handles signals (a signal before that kills
// the process the default way, which says nothing about imago).
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(p.ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("imago did not start handling signals")
		}
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func startImago(t *testing.T, stdin *os.File, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(buildImago(t), args...), done: make(chan struct{})}
	p.ready = filepath.Join(t.TempDir(), "ready")
	p.cmd.Env = append(os.Environ(), testReadyEnv+"="+p.ready)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if stdin != nil {
		p.cmd.Stdin = stdin
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits up to d for the process and returns its exit status.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("imago %s still running after %v\nstderr: %s", strings.Join(p.cmd.Args[1:], " "), d, p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("imago killed by %v, not exited", ws.Signal())
		}
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func mkfifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readingBytes waits until the process has read at least n bytes
// (/proc/PID/io rchar), to send a signal while it is busy reading.
func readingBytes(t *testing.T, pid int, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile("/proc/" + itoa(pid) + "/io")
		if err == nil {
			for _, l := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(l, "rchar: "); ok {
					var got int64
					for _, c := range v {
						got = got*10 + int64(c-'0')
					}
					if got >= n {
						return
					}
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not read %d bytes", pid, n)
}

// mapping waits until the process has path mapped (/proc/PID/maps): it
// is hashing it (runtime-policy create maps big files, so rchar stays 0).
func mapping(t *testing.T, pid int, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if data, err := os.ReadFile("/proc/" + itoa(pid) + "/maps"); err == nil && bytes.Contains(data, []byte(path)) {
			return
		}
	}
	t.Fatalf("process %d did not map %s", pid, path)
}

// TestSignalsEndCommands: SIGINT and SIGTERM end a command promptly with
// status 130 and one line naming the command and the signal, whatever it
// waits on: a FIFO that no one writes to (in open(2)), a FIFO whose writer
// sends nothing, standard input that stays open and empty (a read(2) Go
// cannot interrupt), or a 100 GB sparse file being hashed (also in a tree).
func TestSignalsEndCommands(t *testing.T) {
	testenv.Linux(t, "signals, FIFOs and /proc/PID/io")
	list := fixture(t, "a-ima-ng", "binary_runtime_measurements")
	pcrs := "sha256," + fixture(t, "a-ima-ng", "pcrs-sha256.txt")
	sparse := filepath.Join(t.TempDir(), "sparse")
	if err := os.WriteFile(sparse, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 100<<30); err != nil {
		t.Fatal(err)
	}
	type setup func(t *testing.T) (args []string, stdin *os.File, ready func(p *proc))
	noWriter := func(args ...string) setup {
		return func(t *testing.T) ([]string, *os.File, func(*proc)) {
			f := mkfifo(t)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "FIFO", f)
			}
			return args, nil, func(*proc) { time.Sleep(200 * time.Millisecond) }
		}
	}
	silentWriter := func(args ...string) setup {
		return func(t *testing.T) ([]string, *os.File, func(*proc)) {
			f := mkfifo(t)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "FIFO", f)
			}
			return args, nil, func(*proc) {
				w, err := os.OpenFile(f, os.O_WRONLY, 0) // waits for imago's open
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { w.Close() })
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		setup setup
	}{
		{"log show FIFO, no writer, SIGINT", syscall.SIGINT, noWriter("log", "show", "FIFO")},
		{"log show FIFO, no writer, SIGTERM", syscall.SIGTERM, noWriter("log", "show", "FIFO")},
		{"log check FIFO, no writer", syscall.SIGINT, noWriter("log", "check", "FIFO", "--pcrs", pcrs)},
		{"log check --pcrs FIFO, no writer", syscall.SIGTERM, noWriter("log", "check", list, "--pcrs", "sha256,FIFO")},
		{"eventlog replay FIFO, no writer", syscall.SIGINT, noWriter("eventlog", "replay", "FIFO")},
		{"policy check FIFO, no writer", syscall.SIGINT, noWriter("policy", "check", "FIFO")},
		{"bootagg --eventlog FIFO, no writer", syscall.SIGINT, noWriter("bootagg", "--eventlog", "FIFO")},
		{"log replay FIFO, silent writer", syscall.SIGINT, silentWriter("log", "replay", "FIFO")},
		{"log show FIFO, silent writer, SIGTERM", syscall.SIGTERM, silentWriter("log", "show", "FIFO")},
		{"log show -, stdin open and empty", syscall.SIGINT, func(t *testing.T) ([]string, *os.File, func(*proc)) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			return []string{"log", "show", "-"}, r, func(*proc) { time.Sleep(200 * time.Millisecond) }
		}},
		{"hash 100 GB sparse file", syscall.SIGINT, func(t *testing.T) ([]string, *os.File, func(*proc)) {
			return []string{"hash", "-n", sparse}, nil, func(p *proc) { readingBytes(t, p.cmd.Process.Pid, 64<<20) }
		}},
		{"runtime-policy create --from-dir, 100 GB sparse file", syscall.SIGINT, func(t *testing.T) ([]string, *os.File, func(*proc)) {
			out := filepath.Join(t.TempDir(), "policy.json")
			return []string{"runtime-policy", "create", "--from-dir", filepath.Dir(sparse), "--all-owners", "-o", out}, nil,
				func(p *proc) { mapping(t, p.cmd.Process.Pid, sparse) }
		}},
		{"appraise 100 GB sparse file", syscall.SIGTERM, func(t *testing.T) ([]string, *os.File, func(*proc)) {
			kr := fixture(t, "p-ima-sig-signed", "x509_ima.der")
			return []string{"appraise", "--keyring", kr, sparse}, nil, func(p *proc) { readingBytes(t, p.cmd.Process.Pid, 64<<20) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, stdin, ready := tc.setup(t)
			p := startImago(t, stdin, args...)
			ready(p)
			p.signal(t, tc.sig)
			sent := time.Now()
			code := p.wait(t, 5*time.Second)
			took := time.Since(sent)
			name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[tc.sig]
			if code != exitCanceled || !strings.Contains(p.stderr.String(), "canceled by "+name) ||
				strings.Count(p.stderr.String(), "\n") != 1 || !strings.HasPrefix(p.stderr.String(), "imago: "+args[0]) {
				t.Errorf("exit %d after %v, stderr %q; want %d and one line \"imago: %s ...: canceled by %s\"",
					code, took, p.stderr.String(), exitCanceled, args[0], name)
			}
			if took > 2*time.Second {
				t.Errorf("took %v to end", took)
			}
		})
	}
}

// TestPipesStillWork: bash's <(...) (a pipe with a writer), a FIFO whose
// writer comes after imago opened it, and standard input all give the
// whole list, as a regular file does.
func TestPipesStillWork(t *testing.T) {
	bash := testenv.Tool(t, "bash")
	bin := buildImago(t)
	list := fixture(t, "a-ima-ng", "binary_runtime_measurements")
	want, err := os.ReadFile(fixture(t, "a-ima-ng", "ascii_runtime_measurements"))
	if err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{
		`"$0" log show <(cat "$1")`,
		`"$0" log show <(sleep 0.3; cat "$1")`,
		`cat "$1" | "$0" log show -`,
		`"$0" log show - < "$1"`,
	} {
		t.Run(script, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bash, "-c", script, bin, list).Output()
			if err != nil || !bytes.Equal(out, want) {
				t.Errorf("%v; output differs from the kernel's ascii list:\n%s", err, out)
			}
		})
	}
	t.Run("FIFO, writer later", func(t *testing.T) {
		f := mkfifo(t)
		p := startImago(t, nil, "log", "show", f)
		time.Sleep(200 * time.Millisecond)
		data, err := os.ReadFile(list)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, data, 0o600); err != nil { // opens, writes, closes
			t.Fatal(err)
		}
		if code := p.wait(t, 10*time.Second); code != 0 || !bytes.Equal(p.stdout.Bytes(), want) {
			t.Errorf("exit %d, stderr %s", code, p.stderr.String())
		}
	})
	t.Run("log check --pcrs <(cat pcrs)", func(t *testing.T) {
		out, err := exec.Command(bash, "-c", `"$0" log check "$1" --pcrs sha256,<(cat "$2")`, bin, list,
			fixture(t, "a-ima-ng", "pcrs-sha256.txt")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "matched: 16 entries") {
			t.Errorf("%v\n%s", err, out)
		}
	})
}

// Keys, certificates and keyring files are small regular files: /dev/zero,
// a FIFO without a writer, a 100 GB sparse file or a link to any of them
// is refused at once with a clear error (exit 2), never read into memory
// or waited on. Files to hash or sign must be regular files too.
func TestKeyReadsBounded(t *testing.T) {
	testenv.Linux(t, "FIFOs and /dev/zero")
	dir := t.TempDir()
	fifo := mkfifo(t)
	huge := filepath.Join(dir, "huge.pem")
	os.WriteFile(huge, nil, 0o600)
	if err := os.Truncate(huge, 100<<30); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o700)
	cert := fixture(t, "p-ima-sig-signed", "x509_ima.der")
	for name, target := range map[string]string{"ima.der": cert, "zero.der": "/dev/zero", "fifo.der": fifo, "huge.pem": huge} {
		if err := os.Symlink(target, filepath.Join(keys, name)); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("data"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"appraise", "--keyring", "/dev/zero", file}, 2, []string{"imago: keyring: /dev/zero: not a regular file (a character device)"}},
		{[]string{"appraise", "--keyring", fifo, file}, 2, []string{"not a regular file (a FIFO)"}},
		{[]string{"appraise", "--keyring", huge, file}, 2, []string{"too large for a key or certificate"}},
		{[]string{"appraise", "--keyring", keys, file}, 1, []string{
			"imago: keyring: skipped " + filepath.Join(keys, "fifo.der") + ": not a regular file (a FIFO)",
			"imago: keyring: skipped " + filepath.Join(keys, "huge.pem") + ": larger than 1048576 bytes",
			"imago: keyring: skipped " + filepath.Join(keys, "zero.der") + ": not a regular file (a character device)",
		}},
		{[]string{"sign", "--key", "/dev/zero", file}, 2, []string{"imago: --key /dev/zero: not a regular file (a character device)"}},
		{[]string{"sign", "--key", filepath.Join(keys, "zero.der"), file}, 2, []string{"not a regular file (a character device)"}},
		{[]string{"sign", "--key", fifo, file}, 2, []string{"not a regular file (a FIFO)"}},
		{[]string{"sign", "--key", huge, file}, 2, []string{"too large"}},
		{[]string{"hash", "-n", fifo}, 2, []string{"imago: hash: " + fifo + ": not a regular file (a FIFO)"}},
		{[]string{"hash", "-n", "/dev/zero"}, 2, []string{"not a regular file (a character device)"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			p := startImago(t, nil, tc.args...)
			code := p.wait(t, 10*time.Second)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, p.stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(p.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, p.stderr.String())
				}
			}
		})
	}
}
