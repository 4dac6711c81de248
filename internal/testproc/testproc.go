package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Proc is a started process.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd and polls ready until it reports true, the process
// exits (an error naming its status), or timeout passes (the process is
// killed; an error).
func Start(cmd *exec.Cmd, ready func() bool, timeout time.Duration) (*Proc, error) {
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited at start: %v", cmd.Path, cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("%s not ready within %v", cmd.Path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, nil
}

// Stop sends sig, waits up to grace, then kills; it returns when the
// process has exited.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Kill kills the process (SIGKILL) and waits for it.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// ExitCode is the process's exit status once it has exited (-1 if killed
// by a signal or still running).
func (p *Proc) ExitCode() int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}
