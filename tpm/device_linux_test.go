package tpm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

func TestOpenDeviceErrors(t *testing.T) {
	dir := t.TempDir()
	absent := filepath.Join(dir, "tpmrm9")
	if _, err := Open(absent); !errors.Is(err, ErrNoTPM) {
		t.Errorf("Open(absent) = %v, want ErrNoTPM", err)
	}
	if Available(absent) {
		t.Errorf("Available(absent) = true")
	}
	regular := filepath.Join(dir, "tpm0")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(regular)
	if !errors.Is(err, linuxtpm.ErrFileIsNotDevice) || errors.Is(err, ErrNoTPM) {
		t.Errorf("Open(regular file) = %v, want ErrFileIsNotDevice and not ErrNoTPM", err)
	}
	if Available(regular) {
		t.Errorf("Available(regular file) = true")
	}
	// /dev/null is a character device that is not a TPM: it accepts the
	// command and answers nothing. That is a failure, not "no TPM".
	if isCharDevice("/dev/null") {
		_, err := Open("/dev/null")
		if err == nil || errors.Is(err, ErrNoTPM) {
			t.Errorf("Open(/dev/null) = %v, want a non-ErrNoTPM error", err)
		}
	}
}
