//go:build unix

package cputime

import (
	"crypto/sha256"
	"runtime"
	"testing"
	"time"
)

// Spinning for a while uses CPU time, about as much as it takes (less only
// when the machine is loaded), never more than wall time times the cores.
func TestProcess(t *testing.T) {
	m := Start()
	wall := time.Now()
	buf := make([]byte, 1<<20)
	for time.Since(wall) < 200*time.Millisecond {
		sha256.Sum256(buf)
	}
	used, took := m.Elapsed(), time.Since(wall)
	if used <= 0 || used > time.Duration(runtime.NumCPU()+1)*took {
		t.Fatalf("CPU time %v over %v of wall time", used, took)
	}
}
