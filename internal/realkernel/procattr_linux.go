package realkernel

import "syscall"

// procAttr makes the kernel kill a child (qemu, swtpm) if the test process
// dies without stopping it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
