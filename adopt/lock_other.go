//go:build !linux

package adopt

import (
	"errors"
	"os"
)

// lockList: adoption follows Linux's securityfs, and runs on Linux only.
func lockList(*os.File) error {
	return errors.New("adoption of the kernel's list runs on Linux only")
}
