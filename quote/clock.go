package quote

import "fmt"

// Change is how a quote's clock relates to the one before it.
type Change int

const (
	// Same: the same TPM power cycle, the clock moved forward.
	Same Change = iota
	// Restart: TPM Restart or Resume (restartCount grew, resetCount did
	// not): the PCRs may have been reset.
	Restart
	// Reset: TPM Reset (resetCount grew), a reboot: the PCRs were reset.
	Reset
)

func (c Change) String() string {
	switch c {
	case Same:
		return "same"
	case Restart:
		return "restart"
	case Reset:
		return "reset"
	}
	return fmt.Sprintf("change(%d)", int(c))
}

// ClockError reports signed counters that went backwards: a quote older
// than one already seen (a replay), or a TPM that is not the one seen.
type ClockError struct {
	Prev, Cur ClockInfo
	What      string
}

func (e *ClockError) Error() string {
	return fmt.Sprintf("quote: %s went backwards (was clock %d reset %d restart %d, now clock %d reset %d restart %d)",
		e.What, e.Prev.Clock, e.Prev.ResetCount, e.Prev.RestartCount, e.Cur.Clock, e.Cur.ResetCount, e.Cur.RestartCount)
}

// CheckClock compares a quote's clock information with the previous
// accepted quote's from the same TPM. resetCount never goes backwards;
// within one reset, restartCount never goes backwards; within one reset and
// restart, clock strictly increases. A reboot is therefore told from what
// the TPM signed, never from anything the attester says. Across a reset
// the clock is not compared: a TPM that lost power without an orderly
// shutdown restarts its clock from the last value it saved.
func CheckClock(prev, cur ClockInfo) (Change, error) {
	switch {
	case cur.ResetCount < prev.ResetCount:
		return 0, &ClockError{prev, cur, "resetCount"}
	case cur.ResetCount > prev.ResetCount:
		return Reset, nil
	case cur.RestartCount < prev.RestartCount:
		return 0, &ClockError{prev, cur, "restartCount"}
	case cur.RestartCount > prev.RestartCount:
		return Restart, nil
	case cur.Clock <= prev.Clock:
		return 0, &ClockError{prev, cur, "clock"}
	}
	return Same, nil
}
