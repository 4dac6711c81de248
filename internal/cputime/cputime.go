// Package cputime reads the CPU time a process has used, so that benchmarks
// can report it beside wall time: on a machine that other work keeps busy,
// wall time measures the load, CPU time the code.
package cputime

import (
	"testing"
	"time"
)

// Meter measures the process's CPU time (user and system, every thread)
// from Start.
type Meter struct{ start time.Duration }

// Start begins a measurement.
func Start() Meter { return Meter{Process()} }

// Elapsed returns the CPU time used since Start.
func (m Meter) Elapsed() time.Duration { return Process() - m.start }

// Report adds the CPU time per unit since Start to a benchmark's results,
// as "cpu-ns/<unit>", for units of work in all (b.N times the work of one
// iteration, counted in unit).
func (m Meter) Report(b *testing.B, units float64, unit string) {
	if units > 0 {
		b.ReportMetric(float64(m.Elapsed().Nanoseconds())/units, "cpu-ns/"+unit)
	}
}
