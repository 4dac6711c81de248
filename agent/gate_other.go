//go:build !linux

package agent

import (
	"context"

	"github.com/imago-ima/imago/gate"
)

// RunGate returns gate.ErrNotSupported off Linux.
func RunGate(ctx context.Context, cfg Config, gc GateConfig) error { return gate.ErrNotSupported }

// RunningGate is not available off Linux.
type RunningGate struct{}

// StartGate returns gate.ErrNotSupported off Linux.
func (a *Agent) StartGate(ctx context.Context, gc GateConfig) (*RunningGate, error) {
	return nil, gate.ErrNotSupported
}

// Wait returns gate.ErrNotSupported.
func (r *RunningGate) Wait() error { return gate.ErrNotSupported }

// Stats returns zeros.
func (r *RunningGate) Stats() GateStats { return GateStats{} }

// Marks returns nothing.
func (r *RunningGate) Marks() map[string]string { return nil }
