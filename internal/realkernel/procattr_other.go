//go:build !linux

package realkernel

import "syscall"

// procAttr: booting a kernel under qemu is for Linux hosts (Require says
// so); elsewhere the children get no death signal.
func procAttr() *syscall.SysProcAttr { return nil }
