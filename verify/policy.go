package verify

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

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
	// Pending, in place of RuntimePolicy, is a runtime policy still being
	// compiled (runtimepolicy.CompileAsync), as imago verify reads the
	// policy and the list at once: Verify reads, hashes and replays the
	// list meanwhile, judges whatever needs no policy, keeps the path and
	// digest of up to MaxDeferred bytes of entries that the digest rule
	// alone decides, and judges them and the rest once the policy is
	// compiled. An error compiling it is the error of Verify and of
	// PolicyErr.
	Pending *runtimepolicy.Pending
}

// MaxDeferred bounds the memory Verify keeps for the entries it judges
// once a pending policy is compiled (Options.Pending); past it, Verify
// waits for the policy. 40 MiB holds about 290,000 entries of paths of 50
// bytes: most of what both cores read of a list while a policy of a
// million paths is compiled, while the whole command stays within the
// policy's size + 64 MiB of memory (issue 8; 48 MiB came within 1 MiB of
// that bound).
const MaxDeferred = 40 << 20

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
	// ready is closed once rp, keys and tenant are final: at once, or when
	// a pending policy is compiled (loadErr: it could not be).
	ready   chan struct{}
	loadErr error
	// deferred counts the entries judged once a pending policy was
	// compiled; maxDeferred is MaxDeferred (tests lower it).
	deferred    atomic.Int64
	maxDeferred int64
}

// NewPolicy checks opts and compiles them.
func NewPolicy(opts Options) (*Policy, error) {
	p := &Policy{rp: opts.RuntimePolicy, opts: opts, maxDeferred: MaxDeferred}
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
	p.ready = make(chan struct{})
	if opts.Pending != nil {
		if opts.RuntimePolicy != nil {
			return nil, fmt.Errorf("verify: a runtime policy and a pending one")
		}
		go func() { // ends with the compile
			rp, err := opts.Pending.Wait()
			if err == nil {
				p.setPolicy(rp)
			}
			p.loadErr = err
			close(p.ready)
		}()
		return p, nil
	}
	p.setPolicy(p.rp)
	close(p.ready)
	return p, nil
}

func (p *Policy) setPolicy(rp *runtimepolicy.Compiled) {
	p.rp = rp
	if rp != nil {
		p.keys = append(p.keys, rp.VerificationKeys()...)
	}
	p.tenant = len(p.keys) > 0
}

// wait waits until the runtime policy is compiled (at once, unless it is
// pending) and returns the error compiling it.
func (p *Policy) wait() error {
	<-p.ready
	return p.loadErr
}

// compiled reports whether the policy is final, without waiting.
func (p *Policy) compiled() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// PolicyErr waits for a pending runtime policy (Options.Pending) and
// returns the error compiling it; nil for any other Policy.
func (p *Policy) PolicyErr() error { return p.wait() }

// RuntimePolicy returns the runtime policy (nil if none), waiting for a
// pending one.
func (p *Policy) RuntimePolicy() *runtimepolicy.Compiled {
	p.wait()
	return p.rp
}

// mode says how entries are judged, from Keylime's process_measurement_list
// arguments: with a runtime policy; with keys only (ima-sig entries must be
// signed, ima-ng entries pass); or with neither (only PCRs, the boot
// aggregate and template digests are checked).
func (p *Policy) keysMode() bool { return p.rp != nil || p.tenant }

// PCR returns the PCR the list's entries must be in.
func (p *Policy) PCR() int { return p.opts.PCR }
