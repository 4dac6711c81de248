//go:build !cgo

package tpm

import "github.com/google/go-tpm/tpm2/transport"

// simBuiltIn reports whether the sim backend is compiled in.
const simBuiltIn = false

// openSim reports that this binary was built without cgo, which the
// go-tpm-tools simulator needs.
func openSim() (transport.TPMCloser, error) {
	return nil, ErrSimulatorNotBuilt
}
