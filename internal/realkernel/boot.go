package realkernel

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BaseCmdline is the start of every kernel command line: the serial
// console, root= so that the initramfs root is a ramfs (with no root= the
// 6.1 kernel makes it a tmpfs, which ima_policy=tcb does not measure),
// our /init, no reboot on panic.
const BaseCmdline = "console=ttyS0,115200 root=/dev/ram0 rdinit=/init panic=-1 loglevel=7"

// Defaults.
const (
	DefaultMemory  = 512 // MiB
	DefaultTimeout = 5 * time.Minute
)

// File is a file put into the initramfs.
type File struct {
	// Path is the absolute path in the guest.
	Path string
	// Data is the content, unless Src names a host file to copy.
	Data []byte
	Src  string
	// Mode is the permission (0: 0644 for Data, Src's own for Src).
	Mode fs.FileMode
}

// HostTPM attaches a TPM 2.0 to the guest as the firmware sees it (qemu
// tpm-tis backed by a swtpm on the host): SeaBIOS measures into PCRs 0-7 and
// hands over its event log, and the kernel finds the TPM at boot.
type HostTPM struct {
	// StateDir is an existing swtpm state directory (for instance one with
	// EK certificates from ../shared/tools/swtpm-ek.sh); it is used in
	// place. Empty: a fresh one made with swtpm_setup and Banks.
	StateDir string
	// Banks for a fresh state (swtpm_setup --pcr-banks; default sha1,sha256).
	Banks []string
}

// Config says what to boot.
type Config struct {
	// Kernel is the kernel image (default: Kernel()).
	Kernel string
	// Cmdline is appended to BaseCmdline (IMA options, and key=value pairs
	// the kernel hands to /init, hence to Script, as environment variables).
	Cmdline []string
	// Script is the sh script /init runs (ScriptPath), with $OUT the tmpfs
	// whose files come back in Result. Its output goes to $OUT/run.log and
	// its exit status to $OUT/run.status.
	Script string
	// Files are extra files for the initramfs.
	Files []File
	// Imago is a host imago binary to put at ImagoPath: a static one
	// (BuildImago), since the guest has no libc for cgo builds.
	Imago string
	// Swtpm adds swtpm with its libraries and tpm_vtpm_proxy.ko (VTPMModule),
	// so the script can make a TPM appear: insmod, then
	// swtpm chardev --vtpm-proxy --tpm2 --tpmstate dir=D --flags not-need-init,startup-clear.
	Swtpm bool
	// SwtpmStates are swtpm states made on the host with swtpm_setup (name
	// to PCR banks), put at SwtpmStateDir/<name> (implies Swtpm).
	SwtpmStates map[string][]string
	// TPM, if set, attaches a host TPM at boot.
	TPM *HostTPM
	// Memory in MiB (DefaultMemory); Timeout bounds the boot (DefaultTimeout).
	Memory  int
	Timeout time.Duration
	// Dir is the working directory (initramfs, logs, outputs), required;
	// a test passes t.TempDir().
	Dir string
	// Busybox is the static busybox (default /bin/busybox).
	Busybox string
}

// Result is what a boot gave back.
type Result struct {
	// Dir holds the files the guest left in $OUT (also in Out), and
	// console.log, initramfs.cpio.
	Dir string
	// Out maps a file's path relative to $OUT to its content. The harness
	// adds run.log, run.status, cmdline.txt and dmesg.txt.
	Out map[string][]byte
	// Console is the serial console (kernel log and /init's messages).
	Console []byte
	// Status is the script's exit status.
	Status int
	// Elapsed is the time qemu ran.
	Elapsed time.Duration
}

// ErrNoOutput: the guest did not send its outputs back (it hung, panicked
// or the script killed it); the error names the console's last lines.
var ErrNoOutput = errors.New("realkernel: the guest sent no output")

// Boot builds the initramfs, boots the kernel under qemu (TCG) and returns
// what the guest left in $OUT. Every process it starts (qemu, a host swtpm)
// is gone when it returns.
func Boot(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	states := map[string]string{}
	for name, banks := range cfg.SwtpmStates {
		d := filepath.Join(cfg.Dir, "swtpm-state-"+name)
		if err := swtpmSetup(d, banks); err != nil {
			return nil, err
		}
		states[name] = d
	}
	img, err := build(&cfg, states)
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(cfg.Dir, "initramfs.cpio")
	if err := os.WriteFile(initrd, img, 0o600); err != nil {
		return nil, fmt.Errorf("realkernel: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	console, data := filepath.Join(cfg.Dir, "console.log"), filepath.Join(cfg.Dir, "out.serial")
	args := []string{"-machine", "q35,accel=tcg", "-m", strconv.Itoa(cfg.Memory), "-smp", "1",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-kernel", cfg.Kernel, "-initrd", initrd,
		"-append", strings.Join(append([]string{BaseCmdline}, cfg.Cmdline...), " "),
		"-serial", "file:" + console, "-serial", "file:" + data}
	if cfg.TPM != nil {
		sock, stop, err := startHostTPM(ctx, cfg.Dir, cfg.TPM)
		if err != nil {
			return nil, err
		}
		defer stop()
		args = append(args, "-chardev", "socket,id=chrtpm,path="+sock,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0")
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.SysProcAttr = procAttr()
	cmd.WaitDelay = 5 * time.Second
	var qout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qout, &qout
	t0 := time.Now()
	runErr := cmd.Run()
	res := &Result{Dir: cfg.Dir, Elapsed: time.Since(t0), Out: map[string][]byte{}}
	res.Console, _ = os.ReadFile(console)
	if ctx.Err() != nil {
		return res, fmt.Errorf("realkernel: qemu did not finish within %v: %w\nconsole tail:\n%s", cfg.Timeout, ctx.Err(), lastLines(res.Console, 30))
	}
	if runErr != nil {
		return res, fmt.Errorf("realkernel: qemu: %v\n%s\nconsole tail:\n%s", runErr, qout.Bytes(), lastLines(res.Console, 30))
	}
	serial, err := os.ReadFile(data)
	if err != nil {
		return res, fmt.Errorf("realkernel: %w", err)
	}
	if err := unpack(serial, filepath.Join(cfg.Dir, "out"), res.Out); err != nil {
		return res, fmt.Errorf("%w: %v\nconsole tail:\n%s", ErrNoOutput, err, lastLines(res.Console, 30))
	}
	res.Status, err = strconv.Atoi(strings.TrimSpace(string(res.Out["run.status"])))
	if err != nil {
		return res, fmt.Errorf("realkernel: run.status %q", res.Out["run.status"])
	}
	return res, nil
}

func (c *Config) setDefaults() error {
	if c.Kernel == "" {
		k, err := Kernel()
		if err != nil {
			return err
		}
		c.Kernel = k
	}
	if c.Busybox == "" {
		c.Busybox = "/bin/busybox"
	}
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if len(c.SwtpmStates) > 0 {
		c.Swtpm = true
	}
	if c.Dir == "" {
		return errors.New("realkernel: Config.Dir is required")
	}
	return nil
}

// swtpmSetup manufactures a TPM 2.0 state with the given PCR banks.
func swtpmSetup(dir string, banks []string) error {
	if len(banks) == 0 {
		banks = []string{"sha1", "sha256"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("realkernel: %w", err)
	}
	out, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", dir, "--pcr-banks", strings.Join(banks, ","), "--overwrite").CombinedOutput()
	if err != nil {
		return fmt.Errorf("realkernel: swtpm_setup --pcr-banks %s: %v\n%s", strings.Join(banks, ","), err, out)
	}
	// swtpm_setup leaves a log and lock behind; the state is tpm2-00.permall.
	for _, f := range []string{".lock", "swtpm.log"} {
		os.Remove(filepath.Join(dir, f))
	}
	return nil
}

// startHostTPM starts `swtpm socket` for qemu's tpm-tis on a unix control
// socket and returns its path and a function that stops swtpm.
func startHostTPM(ctx context.Context, dir string, t *HostTPM) (string, func(), error) {
	state := t.StateDir
	if state == "" {
		state = filepath.Join(dir, "host-tpm")
		if err := swtpmSetup(state, t.Banks); err != nil {
			return "", nil, err
		}
	}
	sock := filepath.Join(dir, "swtpm.sock")
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--ctrl", "type=unixio,path="+sock, "--terminate",
		"--log", "file="+filepath.Join(dir, "swtpm.log")+",level=1")
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("realkernel: swtpm: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		cmd.Process.Kill()
		<-done
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// No probe connection: with --terminate, swtpm would end when the
		// probe hangs up. The socket file exists once swtpm has bound it.
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			time.Sleep(50 * time.Millisecond)
			return sock, stop, nil
		}
		select {
		case <-done:
			return "", nil, fmt.Errorf("realkernel: swtpm exited at start (see %s)", filepath.Join(dir, "swtpm.log"))
		case <-ctx.Done():
			stop()
			return "", nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("realkernel: swtpm did not create its socket within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unpack finds the base64 tar between the markers in the serial output and
// extracts it into dir and out.
func unpack(serial []byte, dir string, out map[string][]byte) error {
	serial = bytes.ReplaceAll(serial, []byte("\r"), nil)
	_, rest, ok := bytes.Cut(serial, []byte(beginMarker+"\n"))
	if !ok {
		return errors.New("no " + beginMarker + " line")
	}
	body, _, ok := bytes.Cut(rest, []byte(endMarker))
	if !ok {
		return errors.New("no " + endMarker + " line")
	}
	raw, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, newlineSkipper{bytes.NewReader(body)}))
	if err != nil {
		return fmt.Errorf("base64: %w", err)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := filepath.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag != tar.TypeReg || name == "." || !filepath.IsLocal(name) {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("tar: %s: %w", name, err)
		}
		out[filepath.ToSlash(name)] = data
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
}

// newlineSkipper drops the newlines between base64 lines.
type newlineSkipper struct{ r io.Reader }

func (s newlineSkipper) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

func lastLines(b []byte, n int) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
