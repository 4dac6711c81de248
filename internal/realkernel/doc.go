// Package realkernel boots Debian's real Linux 6.1 kernel (linux-image-amd64,
// /boot/vmlinuz-6.1*) under qemu (TCG: no KVM needed) with an initramfs it
// builds, runs a script in the guest and brings back the files the script
// leaves in $OUT. It is for tests: the kernel's own IMA and TPM code is the
// oracle no emulation of ours can be.
//
// # Use
//
//	realkernel.Require(t, true)                  // qemu, the kernel, busybox, swtpm (testenv.Missing otherwise)
//	res, err := realkernel.Boot(ctx, realkernel.Config{
//		Dir:     t.TempDir(),
//		Cmdline: []string{"ima_policy=tcb", "ima_template=ima-ng"},
//		Imago:   realkernel.BuildImago(t),        // static imago at /bin/imago
//		SwtpmStates: map[string][]string{"a": {"sha1", "sha256"}}, // at /etc/swtpm/a
//		Files:   []realkernel.File{{Path: "/etc/x", Data: []byte("...")}},
//		Script: `cat /sys/kernel/security/ima/ascii_runtime_measurements > $OUT/list`,
//	})
//	// res.Out["list"], res.Out["dmesg.txt"], res.Status (the script's exit status), res.Console
//
// Config.TPM attaches a TPM at boot instead (a host swtpm as qemu's tpm-tis:
// SeaBIOS measures PCRs 0-7 and the kernel's IMA uses the TPM from the
// start); Config.Swtpm (implied by SwtpmStates) puts swtpm, its libraries and
// tpm_vtpm_proxy.ko (VTPMModule) in the initramfs, so that a script can make
// a TPM appear late:
//
//	insmod /lib/modules/tpm_vtpm_proxy.ko
//	cp -r /etc/swtpm/a /run/tpm-a
//	swtpm chardev --vtpm-proxy --tpm2 --tpmstate dir=/run/tpm-a --flags not-need-init,startup-clear &
//
// (with startup-none the kernel's own TPM2_Startup times out under TCG).
//
// # The guest
//
// The kernel command line is BaseCmdline plus Config.Cmdline; key=value
// words the kernel does not know reach the script as environment variables.
// root=/dev/ram0 makes the initramfs root a ramfs, which ima_policy=tcb
// measures (execs, executable mmaps, root's reads); $OUT (OutDir) and
// ScratchDir (/run) are tmpfs, which tcb does not measure: keep scratch
// files there, or every rewrite of a file on the root changes the list. /init
// mounts proc, sysfs, securityfs, devtmpfs and the two tmpfs, runs the
// script (sh ScriptPath) with its output in $OUT/run.log and its exit status
// in $OUT/run.status, adds cmdline.txt and dmesg.txt, sends $OUT back as a
// base64 tar over the second serial port between two marker lines, and
// powers off. busybox-static provides every applet (in /bin).
//
// # Determinism
//
// The initramfs is a newc cpio written here: sorted names, inode numbers
// from 1, owner root, one fixed mtime. The same inputs give the same bytes,
// so the same files give the same measurements from one boot to the next
// (the imago binary and swtpm states are inputs too).
//
// Each boot takes about 10-40 s on a 2-core machine without KVM;
// Config.Timeout (5 minutes by default) bounds it, and every process Boot
// starts is gone when it returns.
package realkernel
