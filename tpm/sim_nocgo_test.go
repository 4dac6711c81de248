//go:build !cgo

package tpm_test

import (
	"errors"
	"testing"

	"github.com/imago-ima/imago/tpm"
)

func simBackend() (backend, bool) { return backend{}, false }

func TestSimNotBuilt(t *testing.T) {
	if _, err := tpm.Open("sim"); !errors.Is(err, tpm.ErrSimulatorNotBuilt) {
		t.Errorf("Open(sim) = %v, want ErrSimulatorNotBuilt", err)
	}
	if tpm.Available("sim") {
		t.Error("Available(sim) = true without cgo")
	}
}
