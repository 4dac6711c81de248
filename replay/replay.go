package replay

import (
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// defaultBanks are the banks replayed when Options.Banks is empty.
func defaultBanks() []pcr.Bank { return []pcr.Bank{pcr.SHA1, pcr.SHA256} }

// DefaultMaxTemplateMismatches bounds Result.TemplateMismatches when
// Options.MaxTemplateMismatches is 0.
const DefaultMaxTemplateMismatches = 64

// Options control a replay.
type Options struct {
	// Banks to replay; sha1 and sha256 when empty. Each must be a bank imago
	// can compute (pcr.Bank.Known).
	Banks []pcr.Bank

	// ListBank is the bank the listed template digests belong to: SHA1 for
	// the classic binary_runtime_measurements (20-byte digests), the bank
	// of a per-bank binary_runtime_measurements_<alg> file. Zero: the
	// bank whose size is the first entry's digest width
	// (pcr.BankForSize).
	ListBank pcr.Bank

	// MaxTemplateMismatches bounds the template-digest mismatches kept in
	// the result (all are counted). Zero means
	// DefaultMaxTemplateMismatches; negative keeps none.
	MaxTemplateMismatches int

	// InlinePadded computes the padded SHA-1 variant (§4.4, old kernels)
	// of every non-SHA-1 bank in the same pass as the per-bank replay. Set
	// it when the list cannot be read twice (a pipe); otherwise Check
	// reads the list a second time, and only for a bank whose per-bank
	// replay did not match.
	InlinePadded bool
}

// Variant names how a bank's template digests were formed.
type Variant uint8

const (
	// PerBank: each bank extends H_bank(template data), kernels since
	// about 5.1 (§4.3).
	PerBank Variant = iota
	// PaddedSHA1: every bank extends the SHA-1 template digest
	// zero-padded to the bank size, older kernels (§4.4).
	PaddedSHA1
)

func (v Variant) String() string {
	if v == PaddedSHA1 {
		return "padded-sha1"
	}
	return "per-bank"
}

// TemplateMismatch is an entry whose recomputed template digest differs
// from the listed one (§4.1).
type TemplateMismatch struct {
	Entry    int // 0-based index in the list
	PCR      int
	Bank     pcr.Bank // the list's bank
	Listed   []byte
	Computed []byte
}

// Result is what a replay of a whole list gives.
type Result struct {
	Banks    []pcr.Bank // replayed, in the order asked
	ListBank pcr.Bank
	// PCRs holds, per bank, the per-bank value of every PCR that some entry
	// names, after the last entry.
	PCRs pcr.Set
	// Padded holds the padded SHA-1 variant's values for the banks it was
	// computed for (none unless needed or Options.InlinePadded).
	Padded     pcr.Set
	Entries    int
	Violations int
	// TemplateMismatches lists the first mismatches (bounded by
	// Options.MaxTemplateMismatches); TemplateMismatchCount counts all.
	TemplateMismatches    []TemplateMismatch
	TemplateMismatchCount int
}

// Replay folds every entry of the list into the requested banks. It
// returns an error, and no result, if the list cannot be read or the
// options make no sense; template-digest mismatches are data in the
// Result.
func Replay(entries iter.Seq2[*ima.Entry, error], opts Options) (*Result, error) {
	r, _, err := replayPass(entries, opts, nil, opts.InlinePadded)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (o *Options) banks() ([]pcr.Bank, error) {
	banks := o.Banks
	if len(banks) == 0 {
		banks = defaultBanks()
	}
	for i, b := range banks {
		if !b.Known() {
			return nil, fmt.Errorf("replay: bank %s cannot be computed", b)
		}
		if slices.Contains(banks[:i], b) {
			return nil, fmt.Errorf("replay: bank %s asked twice", b)
		}
	}
	return banks, nil
}

func (o *Options) maxMismatches() int {
	switch {
	case o.MaxTemplateMismatches == 0:
		return DefaultMaxTemplateMismatches
	case o.MaxTemplateMismatches < 0:
		return 0
	}
	return o.MaxTemplateMismatches
}

// replayPass runs one pass with a per-bank lane for each bank (and a padded
// lane for each non-SHA-1 bank when padded is set). It returns the result
// and the lanes, for Check.
func replayPass(entries iter.Seq2[*ima.Entry, error], opts Options, target pcr.Set, padded bool) (*Result, []*lane, error) {
	banks, err := opts.banks()
	if err != nil {
		return nil, nil, err
	}
	res := &Result{Banks: banks, PCRs: make(pcr.Set)}
	var lanes []*lane
	setup := func(listSize int) (*plan, error) {
		lb := opts.ListBank
		if lb == 0 {
			var ok bool
			if lb, ok = pcr.BankForSize(listSize); !ok {
				return nil, fmt.Errorf("replay: listed digests of %d bytes belong to no known bank; name the list's bank", listSize)
			}
		}
		if lb.Size() != listSize {
			return nil, fmt.Errorf("replay: listed digests are %d bytes, %s digests %d", listSize, lb, lb.Size())
		}
		res.ListBank = lb
		pl := &plan{}
		slot := func(b pcr.Bank) int {
			if i := slices.Index(pl.digestBanks, b); i >= 0 {
				return i
			}
			pl.digestBanks = append(pl.digestBanks, b)
			return len(pl.digestBanks) - 1
		}
		pl.listSlot = slot(lb)
		checked := false
		for _, b := range banks {
			l := newLane(b, lanePerBank, lb, listSize, target, opts.maxMismatches())
			l.slot, l.listSlot = slot(b), pl.listSlot
			if b == lb {
				l.checkTD, l.collect, checked = true, true, true
			}
			lanes = append(lanes, l)
		}
		if !checked {
			l := newLane(lb, laneCheckOnly, lb, listSize, nil, opts.maxMismatches())
			l.listSlot = pl.listSlot
			l.checkTD, l.collect = true, true
			lanes = append(lanes, l)
		}
		if padded {
			for _, b := range banks {
				if b != pcr.SHA1 {
					l := newLane(b, lanePadded, lb, listSize, target, 0)
					if lb != pcr.SHA1 {
						l.slot = slot(pcr.SHA1)
					}
					lanes = append(lanes, l)
				}
			}
		}
		pl.lanes = lanes
		return pl, nil
	}
	n, viol, err := pass(entries, setup)
	if err != nil {
		return nil, nil, err
	}
	res.Entries, res.Violations = n, viol
	if lanes == nil { // empty list
		res.ListBank = opts.ListBank
		return res, nil, nil
	}
	for _, l := range lanes {
		switch l.kind {
		case lanePerBank:
			l.store(res.PCRs)
		case lanePadded:
			if res.Padded == nil {
				res.Padded = make(pcr.Set)
			}
			l.store(res.Padded)
		}
		if l.checkTD {
			res.TemplateMismatches = l.mismatches
			res.TemplateMismatchCount = l.mismatchCount
		}
	}
	return res, lanes, nil
}

func (l *lane) store(s pcr.Set) {
	for i := range numPCRs {
		if l.touched&(1<<uint(i)) != 0 {
			s.Put(l.bank, i, l.value[i][:l.size])
		}
	}
}

// PCRCheck is the verdict for one (bank, PCR) that both the list and the
// target name.
type PCRCheck struct {
	Bank pcr.Bank
	PCR  int
	Want []byte // the target (TPM) value
	// Got is the replayed value at the bank's match point when Matched, or
	// after the last entry when not.
	Got     []byte
	Matched bool
	// Prefix is the bank's match point: replaying the list's first Prefix
	// entries gives Want in every checked PCR of the bank (evmctl's
	// "succeed at entry N"). Zero when not matched.
	Prefix  int
	Variant Variant
}

// Report is a Result with the verdict against target PCRs.
type Report struct {
	Result
	// Checks holds one verdict per (bank, PCR) present in both the target
	// and the replay, by bank in Result.Banks order, then PCR index.
	Checks []PCRCheck
}

// ErrNothingChecked is returned by Report.Err when the target names no
// (bank, PCR) that the list extends.
var ErrNothingChecked = errors.New("replay: no PCR of the list is in the target")

// MismatchError is a PCR whose replay does not give the target value, in
// any prefix of the list and in either variant.
type MismatchError struct {
	Bank pcr.Bank
	PCR  int
	Want []byte
	Got  []byte // after the last entry, per-bank variant
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("replay: %s PCR %d: replay gives %x, TPM has %x", e.Bank, e.PCR, e.Got, e.Want)
}

// TemplateError reports template-digest mismatches (§4.1): listed digests
// that the template data do not hash to.
type TemplateError struct {
	Count int
	First TemplateMismatch
}

func (e *TemplateError) Error() string {
	return fmt.Sprintf("replay: %d template digest mismatch(es), first at entry %d: listed %s:%x, template data hash to %x",
		e.Count, e.First.Entry, e.First.Bank, e.First.Listed, e.First.Computed)
}

// Matched reports whether every check matched and every template digest
// agreed.
func (r *Report) Matched() bool { return r.Err() == nil }

// Err returns nil when every checked PCR matched and every template digest
// agreed; otherwise the first *MismatchError, a *TemplateError, or
// ErrNothingChecked when nothing could be compared. All are data about the
// list, not failures to read it.
func (r *Report) Err() error {
	for i := range r.Checks {
		if c := &r.Checks[i]; !c.Matched {
			return &MismatchError{Bank: c.Bank, PCR: c.PCR, Want: c.Want, Got: c.Got}
		}
	}
	if r.TemplateMismatchCount > 0 {
		e := &TemplateError{Count: r.TemplateMismatchCount}
		if len(r.TemplateMismatches) > 0 {
			e.First = r.TemplateMismatches[0]
		} else {
			e.First.Entry = -1
		}
		return e
	}
	if len(r.Checks) == 0 {
		return ErrNothingChecked
	}
	return nil
}

// Check replays the list that open yields and compares every (bank, PCR)
// that both the list and target name. A bank matches at the first prefix
// of the list (at least one of its checked PCRs extended) whose replay
// gives the target in all of the bank's checked PCRs at once: a list read
// after the PCRs may run ahead of them (§4.4). A bank other than SHA-1 whose
// per-bank replay matches at no prefix is tried again under the padded
// SHA-1 variant: in the same pass with Options.InlinePadded, else by
// calling open a second time.
//
// The error is for a list that cannot be read; verdicts are in the Report
// (see Report.Err).
func Check(open func() iter.Seq2[*ima.Entry, error], target pcr.Set, opts Options) (*Report, error) {
	res, lanes, err := replayPass(open(), opts, target, opts.InlinePadded)
	if err != nil {
		return nil, err
	}
	rep := &Report{Result: *res}
	if lanes == nil {
		return rep, nil
	}
	var retry []pcr.Bank
	perBank := map[pcr.Bank][]PCRCheck{}
	for _, l := range lanes {
		if l.kind != lanePerBank || l.hasWant&l.touched == 0 {
			continue
		}
		checks := l.verdict(PerBank)
		perBank[l.bank] = checks
		if !checks[0].Matched && l.bank != pcr.SHA1 {
			retry = append(retry, l.bank)
		}
	}
	padded := map[pcr.Bank]*lane{}
	for _, l := range lanes {
		if l.kind == lanePadded {
			padded[l.bank] = l
		}
	}
	if len(retry) > 0 && !opts.InlinePadded {
		o := opts
		o.Banks = retry
		res2, lanes2, err := replayPass(open(), o, target, true)
		if err != nil {
			return nil, fmt.Errorf("second pass over the list (padded SHA-1 variant): %w", err)
		}
		if res2.Entries != res.Entries {
			return nil, fmt.Errorf("replay: second pass read %d entries, the first %d: the list changed", res2.Entries, res.Entries)
		}
		for _, l := range lanes2 {
			if l.kind == lanePadded {
				padded[l.bank] = l
			}
		}
		if rep.Padded == nil {
			rep.Padded = make(pcr.Set)
		}
		rep.Padded.Merge(res2.Padded)
	}
	for _, b := range res.Banks {
		checks, ok := perBank[b]
		if !ok {
			continue
		}
		if !checks[0].Matched {
			if pl := padded[b]; pl != nil {
				if pc := pl.verdict(PaddedSHA1); pc[0].Matched {
					checks = pc
				}
			}
		}
		rep.Checks = append(rep.Checks, checks...)
	}
	return rep, nil
}

// verdict finds the lane's match point: the smallest prefix k, with at
// least one checked PCR extended, at which every checked PCR (targeted and
// extended by the list) has its target value. See pairState.
func (l *lane) verdict(v Variant) []PCRCheck {
	checked := l.hasWant & l.touched
	var idx []int
	minTouch := -1
	for i := range numPCRs {
		if checked&(1<<uint(i)) != 0 {
			idx = append(idx, i)
			if t := l.pairs[i].firstTouch; minTouch < 0 || t < minTouch {
				minTouch = t
			}
		}
	}
	zero := make([]byte, l.size)
	eqAt := func(i, k int) bool {
		st := &l.pairs[i]
		if k < st.firstTouch {
			return string(l.want[i][:l.size]) == string(zero)
		}
		return st.matchFrom >= 0 && k >= st.matchFrom && (st.matchTo < 0 || k < st.matchTo)
	}
	cands := []int{minTouch}
	for _, i := range idx {
		if f := l.pairs[i].matchFrom; f > minTouch {
			cands = append(cands, f)
		}
	}
	slices.Sort(cands)
	match := -1
	for _, k := range cands {
		all := true
		for _, i := range idx {
			if !eqAt(i, k) {
				all = false
				break
			}
		}
		if all {
			match = k
			break
		}
	}
	out := make([]PCRCheck, 0, len(idx))
	for _, i := range idx {
		c := PCRCheck{
			Bank:    l.bank,
			PCR:     i,
			Want:    append([]byte(nil), l.want[i][:l.size]...),
			Variant: v,
		}
		if match >= 0 {
			c.Matched, c.Prefix, c.Got = true, match, c.Want
		} else {
			c.Got = append([]byte(nil), l.value[i][:l.size]...)
		}
		out = append(out, c)
	}
	return out
}
