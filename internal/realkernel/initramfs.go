package realkernel

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Paths in the guest.
const (
	// ScriptPath is Config.Script in the guest; /init runs it with sh.
	ScriptPath = "/etc/realkernel/run.sh"
	// ImagoPath is the static imago binary (Config.Imago).
	ImagoPath = "/bin/imago"
	// VTPMModule is tpm_vtpm_proxy.ko of the booted kernel (Config.Swtpm).
	VTPMModule = "/lib/modules/tpm_vtpm_proxy.ko"
	// SwtpmStateDir holds the states of Config.SwtpmStates, one directory
	// per name. They are on the ramfs root: copy one to a tmpfs before
	// swtpm uses it (reads of ramfs files by root are measured under tcb).
	SwtpmStateDir = "/etc/swtpm"
	// OutDir is where the guest puts what it sends back (a tmpfs); the
	// script sees it as $OUT.
	OutDir = "/out"
	// ScratchDir is a tmpfs for the script's scratch files (not measured
	// under ima_policy=tcb, which skips tmpfs).
	ScratchDir = "/run"
)

// image is an initramfs being assembled: path (no leading slash) to entry.
type image map[string]entry

func (im image) dir(p string) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	for p != "." && p != "" {
		if _, ok := im[p]; !ok {
			im[p] = entry{name: p, mode: modeDir | 0o755}
		}
		p = path.Dir(p)
	}
}

func (im image) file(p string, data []byte, perm fs.FileMode) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	im.dir(path.Dir(p))
	im[p] = entry{name: p, mode: modeRegular | uint32(perm.Perm()), data: data}
}

func (im image) symlink(p, target string) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	im.dir(path.Dir(p))
	im[p] = entry{name: p, mode: modeSymlink | 0o777, data: []byte(target)}
}

// copyFile adds the host file src (symlinks followed) at p, keeping its
// executable bits.
func (im image) copyFile(p, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("realkernel: %w", err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("realkernel: %w", err)
	}
	perm := fs.FileMode(0o644)
	if fi.Mode()&0o111 != 0 {
		perm = 0o755
	}
	im.file(p, data, perm)
	return nil
}

func (im image) entries() []entry {
	out := make([]entry, 0, len(im))
	for _, e := range im {
		out = append(out, e)
	}
	return out
}

// build assembles the initramfs for cfg (inputs resolved by Boot).
func build(cfg *Config, states map[string]string) ([]byte, error) {
	im := image{}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "tmp", "var/tmp",
		strings.TrimPrefix(OutDir, "/"), strings.TrimPrefix(ScratchDir, "/")} {
		im.dir(d)
	}
	if err := im.copyFile("bin/busybox", cfg.Busybox); err != nil {
		return nil, err
	}
	applets, err := exec.Command(cfg.Busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("realkernel: busybox --list: %w", err)
	}
	for _, a := range strings.Fields(string(applets)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			im.symlink("bin/"+a, "busybox")
		}
	}
	im.file("init", []byte(initScript), 0o755)
	im.file(ScriptPath, []byte(cfg.Script), 0o755)
	if cfg.Imago != "" {
		if err := im.copyFile(ImagoPath, cfg.Imago); err != nil {
			return nil, err
		}
	}
	if cfg.Swtpm {
		if err := addSwtpm(im, cfg.Kernel); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		root := states[n]
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			return im.copyFile(path.Join(SwtpmStateDir, n, filepath.ToSlash(rel)), p)
		})
		if err != nil {
			return nil, fmt.Errorf("realkernel: swtpm state %s: %w", n, err)
		}
	}
	for _, f := range cfg.Files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("realkernel: file %q: the guest path must be absolute", f.Path)
		}
		switch {
		case f.Src != "":
			if err := im.copyFile(f.Path, f.Src); err != nil {
				return nil, err
			}
			if f.Mode != 0 {
				e := im[strings.TrimPrefix(path.Clean(f.Path), "/")]
				e.mode = modeRegular | uint32(f.Mode.Perm())
				im[e.name] = e
			}
		default:
			mode := f.Mode
			if mode == 0 {
				mode = 0o644
			}
			im.file(f.Path, f.Data, mode)
		}
	}
	var buf bytes.Buffer
	if err := writeNewc(&buf, im.entries()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// addSwtpm adds swtpm, the shared libraries ldd lists for it (at the paths
// ldd names, so the loader and swtpm's RUNPATH find them), and the booted
// kernel's tpm_vtpm_proxy.ko.
func addSwtpm(im image, kernel string) error {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		return fmt.Errorf("realkernel: %w", err)
	}
	if err := im.copyFile("usr/bin/swtpm", bin); err != nil {
		return err
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("realkernel: ldd %s: %w", bin, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0] // the loader
		default:
			continue
		}
		if err := im.copyFile(lib, lib); err != nil {
			return err
		}
	}
	mod, err := moduleFor(kernel, "tpm_vtpm_proxy.ko")
	if err != nil {
		return err
	}
	return im.copyFile(VTPMModule, mod)
}

// moduleFor finds a module of the kernel image's version under /lib/modules.
func moduleFor(kernel, name string) (string, error) {
	ver := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	var found string
	root := filepath.Join("/lib/modules", ver, "kernel")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == name {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if found == "" {
		return "", fmt.Errorf("realkernel: %s not found under %s", name, root)
	}
	return found, nil
}

// initScript is the guest's /init (busybox sh as PID 1): mount the pseudo
// filesystems and two tmpfs (OutDir, ScratchDir), run the script, then send
// OutDir back over the second serial port as a base64 tar between two
// marker lines, and power off.
const initScript = `#!/bin/sh
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs ` + OutDir + `
mount -t tmpfs -o mode=0755 tmpfs ` + ScratchDir + `
OUT=` + OutDir + `
export OUT
echo "realkernel: running ` + ScriptPath + `" > /dev/kmsg
sh ` + ScriptPath + ` > $OUT/run.log 2>&1
echo $? > $OUT/run.status
echo "realkernel: script exited $(cat $OUT/run.status)" > /dev/kmsg
cat /proc/cmdline > $OUT/cmdline.txt
dmesg > $OUT/dmesg.txt
stty -F /dev/ttyS1 raw -echo 2> /dev/null
{
	echo ` + beginMarker + `
	tar -C $OUT -cf - . | base64
	echo ` + endMarker + `
} > /dev/ttyS1
sync
poweroff -f
`

const (
	beginMarker = "REALKERNEL-OUT-BEGIN"
	endMarker   = "REALKERNEL-OUT-END"
)
