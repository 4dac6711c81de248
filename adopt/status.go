package adopt

import "time"

// State is where adoption stands.
type State string

// The states, in the order a run goes through them.
const (
	// Starting: Run has not checked the kernel's list yet.
	Starting State = "starting"
	// Waiting: the kernel's list is a TPM-bypass list; no TPM yet.
	Waiting State = "waiting"
	// Adopting: a TPM appeared; extending the entries it does not hold.
	Adopting State = "adopting"
	// Following: every entry listed at the last poll is extended.
	Following State = "following"
	// Refused: adoption will not touch this TPM (Status.Reason says why).
	Refused State = "refused"
	// Failed: the TPM or the list failed; a restart finds where it stands.
	Failed State = "failed"
	// Stopped: Run returned after its context ended.
	Stopped State = "stopped"
)

// Status is adoption's state, as `imago status --json` shows it under
// "adoption".
type Status struct {
	State State    `json:"state"`
	TPM   string   `json:"tpm"`
	Banks []string `json:"banks,omitempty"`
	// Listed is the number of entries in the kernel's list at the last
	// poll; Adopted the number the TPM holds (always its first Adopted).
	Listed  int `json:"listed"`
	Adopted int `json:"adopted"`
	// AppearedAt is how many entries the kernel had listed when the TPM
	// appeared (when adoption found it: within one poll of its appearance
	// if adoption was already running): entries 1..AppearedAt predate the
	// TPM. nil until a TPM appears, and after a restart that finds no
	// record of it.
	AppearedAt *int `json:"appeared_at"`
	// ResumedAt is how many entries the TPM already held when this run
	// started on it (a restart); nil if it held none.
	ResumedAt *int `json:"resumed_at,omitempty"`
	// Violations counts the violation entries among the adopted ones.
	Violations int `json:"violations"`
	// LagEntries is Listed - Adopted. LagSeconds is how long the TPM has
	// been behind the list at most: the time since the list was last seen
	// with every entry extended, or since adoption started on this TPM
	// before the first catch-up (0 while no TPM is there).
	LagEntries int     `json:"lag_entries"`
	LagSeconds float64 `json:"lag_seconds"`
	// Interval is the poll interval in seconds.
	Interval float64 `json:"interval_seconds"`
	// Reason is a refusal's reason; Error the refusal or failure, or the
	// TPM failure adoption is recovering from (cleared once caught up).
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Status returns a copy of adoption's status.
func (a *Adopter) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.st
	s.Banks = append([]string(nil), s.Banks...)
	s.LagEntries = max(s.Listed-s.Adopted, 0)
	if !a.caughtUp.IsZero() && (s.State == Adopting || s.State == Following) {
		s.LagSeconds = time.Since(a.caughtUp).Seconds()
	}
	return s
}

func (a *Adopter) set(f func(*Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.st)
}

// caughtUpAt records that every entry counted at time seen is extended.
func (a *Adopter) caughtUpAt(seen time.Time, count, adopted int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.State == Adopting {
		a.log.Info("caught up: every listed entry is in the TPM; following the list", "adopted", adopted)
	}
	a.caughtUp = seen
	a.st.State = Following
	a.st.Error = "" // a TPM failure adoption recovered from
	a.st.Listed = max(count, adopted)
}
