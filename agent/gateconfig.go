package agent

import (
	"errors"
	"time"

	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/ima/digsig"
)

// The gate (package gate) holds opens and execs on watched filesystems
// until the agent has evaluated the policy, measured, appended, extended
// and, under an appraise rule, appraised the file: IMA's "measure before
// use" (ima-spec.md §8.7) in user space. gate.go wires it to the agent
// (Linux); gate_other.go says it is not supported elsewhere.

// ErrGateStopped: the gate's reading loop ended while the agent ran; the
// kernel then allows every access unmeasured, so the agent stops too.
var ErrGateStopped = errors.New("agent: the gate stopped")

// GateConfig configures the gate.
type GateConfig struct {
	// Mounts are paths on the filesystems to watch.
	Mounts []string
	Policy GatePolicy
	// Keyring holds the keys appraise rules verify signatures with.
	Keyring  *digsig.Keyring
	Appraise AppraiseMode
	// Workers, Queue, Timeout, FailClosed: see gate.Config.
	Workers, Queue int
	Timeout        time.Duration
	FailClosed     bool
	// Ready, if set, is closed once the gate is marked and reading.
	Ready chan<- struct{}
	// NoIgnoreMarks keeps every exec reported even where the kernel could
	// be asked to skip the execs of a measured, unchanged file (see
	// Needs.ExecCacheable); for benchmarks of the gate's own path.
	NoIgnoreMarks bool
}

// GateStats counts the gate's work.
type GateStats struct {
	Gate                                   gate.Stats
	Cached, Hashed, Violations, Denied     uint64
	AppraiseFailed, Fixed, Errors, Skipped uint64
}
