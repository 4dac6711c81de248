package adopt

import (
	"errors"
	"fmt"
)

// ErrRefused is what every *RefusedError matches with errors.Is: adoption
// will not touch this TPM, and has left it as it was.
var ErrRefused = errors.New("adopt: refused")

// ErrLocked: another adopter (another imago process) follows this kernel's
// list. Two would extend every entry twice.
var ErrLocked = errors.New("adopt: another process is adopting this kernel's list")

// Reason says why adoption was refused.
type Reason string

// The reasons for a refusal. Every one leaves the TPM's PCRs alone.
const (
	// NoKernelList: securityfs has no ima/ directory (no kernel IMA, or
	// securityfs not mounted).
	NoKernelList Reason = "no-kernel-list"
	// NotBypass: the list's first entry is not a TPM-bypass boot aggregate
	// (a boot_aggregate with an all-zero digest): the kernel found a TPM and
	// extends it itself.
	NotBypass Reason = "not-bypass"
	// NotPrefix: the TPM's PCRs hold something that is not the replay of a
	// prefix of the kernel's list (in some bank), when adoption starts or
	// later while following (something else extended the PCR).
	NotPrefix Reason = "not-prefix"
	// Reserved: the kernel's list names a PCR that is reserved for another
	// user (the agent's own list, --pcr).
	Reserved Reason = "reserved-pcr"
	// BadList: the kernel's list is not what a kernel writes: a listed
	// template digest its data do not hash to, a list that got shorter, an
	// unreadable record.
	BadList Reason = "bad-list"
	// NoBank: the TPM has no PCR bank imago can hash, so nothing it holds can
	// be checked against the list.
	NoBank Reason = "no-bank"
)

// RefusedError is a refusal: the reason and what was found. Adoption has
// extended nothing since the last entry it reports as adopted.
type RefusedError struct {
	Reason Reason
	Detail string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("adopt: refused (%s): %s", e.Reason, e.Detail)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func refuse(r Reason, format string, args ...any) error {
	return &RefusedError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// TPMError is a TPM command that failed while adopting (a timeout, a TPM
// that went away). Whether a failed extend reached the TPM is unknown, so
// adoption closes the TPM, waits for it again and finds where it stands, as
// a restart would (Run does this by itself, with a growing pause).
type TPMError struct {
	Op  string
	Err error
}

func (e *TPMError) Error() string { return "adopt: " + e.Op + ": " + e.Err.Error() }
func (e *TPMError) Unwrap() error { return e.Err }

func tpmErr(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &TPMError{Op: fmt.Sprintf(format, args...), Err: err}
}
