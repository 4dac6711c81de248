//go:build cgo

package tpm_test

import (
	"errors"
	"testing"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// simBackend is the go-tpm-tools simulator: the reference implementation
// built with SHA-1, SHA-256 and SHA-384 (ms-tpm-20-ref TpmProfile.h) plus
// SHA-512 (go-tpm-tools simulator/internal/internal_cgo.go:
// -DALG_SHA512=ALG_YES), all allocated after manufacture.
func simBackend() (backend, bool) {
	return backend{name: "sim", banks: []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384, pcr.SHA512},
		open: func(testing.TB) (string, *tpmtest.Swtpm) { return "sim", nil }}, true
}

func TestSimOnePerProcess(t *testing.T) {
	if !tpm.Available("sim") {
		t.Fatal("Available(sim) = false with cgo")
	}
	a, err := tpm.Open("sim")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpm.Open("sim"); !errors.Is(err, tpm.ErrSimulatorInUse) {
		t.Errorf("second Open(sim) = %v, want ErrSimulatorInUse", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := tpm.Open("sim")
	if err != nil {
		t.Fatalf("Open(sim) after Close: %v", err)
	}
	b.Close()
}
