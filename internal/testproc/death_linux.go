package testproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the process when the test binary
// dies without running its cleanups.
func setDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
