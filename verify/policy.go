package verify

import (
	"fmt"
	"slices"
	"sync"

	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

// Options make a Policy.
type Options struct {
	// RuntimePolicy is the Keylime runtime policy; nil for none.
	RuntimePolicy *runtimepolicy.Compiled
	// Keys verify ima-sig signatures, beside the policy's
	// verification-keys and the keys learned from the list (Keylime's
	// tenant keyring; imago verify --keyring).
	Keys []digsig.Key
	// AllowViolations passes violation entries (all-zero template
	// digest); by default each is a failure (IDViolation).
	AllowViolations bool
	// PCR is the PCR the list's entries must be extended into; 10 when 0
	// (an imago agent may use another).
	PCR int
	// Banks are replayed when a round has no quote; sha1 and sha256 when
	// empty. With a quote, its banks are replayed.
	Banks []pcr.Bank
	// PaddedSHA256 also tries, for the sha256 bank, the zero-padded SHA-1
	// template digests of kernels before 5.1. Other banks but sha1 always
	// try it on a first round (current kernels still pad a bank whose hash
	// they lack).
	PaddedSHA256 bool
	// MaxFailures bounds Report.Failures (all are counted); 1<<20 when 0.
	MaxFailures int
}

// Policy is a compiled verification policy: the runtime policy, the keys
// and the options, built once and used for any number of lists and rounds.
// It is immutable and safe for concurrent use.
type Policy struct {
	rp     *runtimepolicy.Compiled
	keys   []digsig.Key // tenant keys and verification-keys
	tenant bool         // keys were given (Keylime: a keyring exists)
	opts   Options
	banks  []pcr.Bank
	pool   sync.Pool // batches, reused across rounds
}

// NewPolicy checks opts and compiles them.
func NewPolicy(opts Options) (*Policy, error) {
	p := &Policy{rp: opts.RuntimePolicy, opts: opts}
	if p.opts.PCR == 0 {
		p.opts.PCR = 10
	}
	if p.opts.PCR < 0 || p.opts.PCR > pcr.MaxIndex {
		return nil, fmt.Errorf("verify: PCR %d out of range", opts.PCR)
	}
	if p.opts.MaxFailures <= 0 {
		p.opts.MaxFailures = 1 << 20
	}
	p.banks = opts.Banks
	if len(p.banks) == 0 {
		p.banks = []pcr.Bank{pcr.SHA1, pcr.SHA256}
	}
	for i, b := range p.banks {
		if !b.Known() || slices.Contains(p.banks[:i], b) {
			return nil, fmt.Errorf("verify: bank %s cannot be replayed (unknown or twice)", b)
		}
	}
	p.keys = append(p.keys, opts.Keys...)
	if p.rp != nil {
		p.keys = append(p.keys, p.rp.VerificationKeys()...)
	}
	p.tenant = len(p.keys) > 0
	return p, nil
}

// RuntimePolicy returns the runtime policy (nil if none).
func (p *Policy) RuntimePolicy() *runtimepolicy.Compiled { return p.rp }

// mode says how entries are judged, from Keylime's process_measurement_list
// arguments: with a runtime policy; with keys only (ima-sig entries must be
// signed, ima-ng entries pass); or with neither (only PCRs, the boot
// aggregate and template digests are checked).
func (p *Policy) keysMode() bool { return p.rp != nil || p.tenant }

// PCR returns the PCR the list's entries must be in.
func (p *Policy) PCR() int { return p.opts.PCR }
