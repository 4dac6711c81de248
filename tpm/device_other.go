//go:build !linux

package tpm

import (
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
)

// openDevice: TPM character devices are opened on Linux only (tcp://,
// unix:// and sim work everywhere).
func openDevice(path string) (transport.TPMCloser, error) {
	return nil, fmt.Errorf("%w: %s: TPM devices are supported on Linux only", ErrNoTPM, path)
}
