//go:build !linux

package pgtest

import (
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

// Cluster is one PostgreSQL cluster (Linux only).
type Cluster struct {
	URL  string
	Dir  string
	Port int
}

// Options tune a cluster.
type Options struct {
	Settings []string
}

// Start needs Linux.
func Start(tb testing.TB, o ...Options) *Cluster { return New(tb, o...) }

// New needs Linux.
func New(tb testing.TB, o ...Options) *Cluster {
	tb.Helper()
	testenv.Linux(tb, "a PostgreSQL test cluster")
	return nil
}

// Start needs Linux.
func (c *Cluster) Start() {}

// Stop needs Linux.
func (c *Cluster) Stop() {}

// Kill needs Linux.
func (c *Cluster) Kill() {}

// Log needs Linux.
func (c *Cluster) Log() string { return "" }

// CreateDatabase needs Linux.
func (c *Cluster) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	testenv.Linux(tb, "a PostgreSQL test cluster")
	return ""
}
