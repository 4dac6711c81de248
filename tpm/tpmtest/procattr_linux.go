package tpmtest

import "syscall"

// procAttr makes the kernel kill swtpm if the test process dies without
// running its cleanups (a test timeout, a crash).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
