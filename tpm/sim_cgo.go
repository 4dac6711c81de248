//go:build cgo

package tpm

import (
	"fmt"
	"sync/atomic"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/simulator"
)

// simBuiltIn reports whether the sim backend is compiled in.
const simBuiltIn = true

// simOpen guards the one simulator a process can have. go-tpm-tools'
// simulator.Get blocks until the previous one is closed; a second Open("sim")
// fails with ErrSimulatorInUse instead of blocking. The simulator is
// process-global state in C, so this flag is too.
var simOpen atomic.Bool

// openSim starts the go-tpm-tools reference simulator in this process:
// manufactured afresh (new seeds, PCRs reset) and already past
// TPM2_Startup(CLEAR), which simulator.Get sends.
func openSim() (transport.TPMCloser, error) {
	if !simOpen.CompareAndSwap(false, true) {
		return nil, ErrSimulatorInUse
	}
	t, err := simulator.OpenSimulator()
	if err != nil {
		simOpen.Store(false)
		return nil, err
	}
	return &simTPM{TPMCloser: t}, nil
}

type simTPM struct {
	transport.TPMCloser
	closed bool
}

func (s *simTPM) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.TPMCloser.Close()
	simOpen.Store(false)
	if err != nil {
		return fmt.Errorf("tpm: close simulator: %w", err)
	}
	return nil
}
