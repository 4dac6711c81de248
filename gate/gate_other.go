//go:build !linux

package gate

import "context"

// Gate is not available off Linux.
type Gate struct{}

// New returns ErrNotSupported off Linux.
func New(cfg Config) (*Gate, error) { return nil, ErrNotSupported }

// Run returns ErrNotSupported.
func (g *Gate) Run(ctx context.Context) error { return ErrNotSupported }

// Stats returns zeros.
func (g *Gate) Stats() Stats { return Stats{} }

// Marks returns nothing.
func (g *Gate) Marks() map[string]string { return nil }

// IgnoreExecs returns ErrNotSupported.
func (ev *Event) IgnoreExecs() (bool, error) { return false, ErrNotSupported }

// Ignore returns ErrNotSupported.
func (ev *Event) Ignore(kinds ...Kind) (bool, error) { return false, ErrNotSupported }

// Unignore returns ErrNotSupported.
func (ev *Event) Unignore() error { return ErrNotSupported }
