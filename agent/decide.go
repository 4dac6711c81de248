package agent

// State is where the agent is in its staged start (ima-spec.md §9.2).
type State int

const (
	// Starting: before the first stage has run.
	Starting State = iota
	// Deferred: the first stage found no TPM (or InitLate); nothing is
	// listed yet, measurements are queued.
	Deferred
	// Initialised: the aggregate is listed and a TPM is extended.
	Initialised
	// Bypass: the aggregate (zeros) is listed and nothing is extended.
	Bypass
	// Failed: the TPM stopped answering an extend; the list may be one
	// entry ahead (recovered on restart) and measurements are refused.
	Failed
)

func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Deferred:
		return "deferred"
	case Initialised:
		return "initialised"
	case Bypass:
		return "bypass"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Aggregate entry names (ima_init.c, seed patch).
const (
	BootAggregate     = "boot_aggregate"
	BootAggregateLate = "boot_aggregate_late"
)

// Kernel log lines the staged start reproduces (ima_main.c init_ima, seed
// patch).
const (
	msgWillTryLater = "TPM not available, will try later"
	msgBypass       = "No TPM chip found, activating TPM-bypass!"
)

// Action is what one stage decides to do.
type Action int

const (
	// Nothing: the stage has nothing to do (already initialised).
	Nothing Action = iota
	// Defer: stay deferred, queue measurements.
	Defer
	// InitTPM: initialise with the TPM found.
	InitTPM
	// InitBypass: initialise in bypass.
	InitBypass
)

// Decision is a stage's outcome: what to do, the aggregate's name if it
// initialises, and the kernel message to log ("" for none).
type Decision struct {
	Action Action
	Name   string
	Log    string
}

// FirstStage decides the first stage (late_initcall, init_ima(false)):
// tpmOn is false for --tpm none (!CONFIG_TCG_TPM), initLate for the
// CONFIG_IMA_INIT_LATE_SYNC form, found whether the TPM opened.
func FirstStage(tpmOn, initLate, found bool) Decision {
	switch {
	case initLate:
		return Decision{Action: Defer}
	case !tpmOn:
		return Decision{Action: InitBypass, Name: BootAggregate, Log: msgBypass}
	case found:
		return Decision{Action: InitTPM, Name: BootAggregate}
	}
	return Decision{Action: Defer, Log: msgWillTryLater}
}

// LateStage decides the late stage (late_initcall_sync, init_ima(true)): if
// already initialised nothing happens; otherwise found gives the real
// aggregate and not found bypass, both named boot_aggregate_late.
func LateStage(s State, tpmOn, found bool) Decision {
	if s != Deferred {
		return Decision{Action: Nothing}
	}
	if tpmOn && found {
		return Decision{Action: InitTPM, Name: BootAggregateLate}
	}
	return Decision{Action: InitBypass, Name: BootAggregateLate, Log: msgBypass}
}

// Trigger names what started the late stage, for the log.
type Trigger string

// The late-stage triggers.
const (
	TriggerTPMAppeared Trigger = "TPM appeared"
	TriggerWaitExpired Trigger = "tpm-wait expired"
	TriggerRequest     Trigger = "late requested"
	TriggerNoTPM       Trigger = "no TPM to wait for (--tpm none)"
)
