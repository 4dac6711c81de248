package tpm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// openDevice opens a TPM character device through go-tpm's linuxtpm
// transport. An absent node, or one whose driver is gone, is ErrNoTPM.
func openDevice(path string) (transport.TPMCloser, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNoTPM, err)
		}
		return nil, err
	}
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return nil, fmt.Errorf("%w: %s (%s)", linuxtpm.ErrFileIsNotDevice, fi.Mode(), path)
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENODEV) {
			return nil, fmt.Errorf("%w: %w", ErrNoTPM, err)
		}
		return nil, err
	}
	return t, nil
}
