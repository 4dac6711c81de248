package adopt

import (
	"errors"
	"os"
	"syscall"
)

// lockList takes an exclusive, non-blocking flock on the kernel's list
// (securityfs files take flocks like any other); errLockHeld if another
// process holds it. The kernel drops it when the process ends, however.
func lockList(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLockHeld
	}
	return err
}
