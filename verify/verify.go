package verify

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
)

// Round is one verification's input.
type Round struct {
	// Entries are the list's entries from State.Next on: a reader's All,
	// ima.ScanList (entries may be reused between iterations), or
	// Entries(slice).
	Entries iter.Seq2[*ima.Entry, error]
	// List, when Entries is nil, is the list itself (ascii or binary,
	// read with ListOptions): an ascii list is then split into lines that
	// the workers parse on every core.
	List        io.Reader
	ListOptions ima.ReaderOptions
	// Quoted are the PCR values the list must replay to (a verified TPM
	// quote, or PCRs read from the TPM). Every bank given is replayed and
	// must match; the State advances only to the last entry at which every
	// quoted bank matches, and entries after it are left for the next
	// round. nil: no PCR check, every entry is consumed.
	Quoted pcr.Set
	// PCRs are TPM PCR values the boot aggregate may be computed from
	// (PCR 0-9); usually the quote itself.
	PCRs pcr.Set
	// EventLog are PCR values replayed from the firmware event log, for
	// the boot aggregate (give it while State.BootAggregate is "").
	EventLog pcr.Set
}

// Entries adapts a slice for Round.Entries.
func Entries(s []*ima.Entry) iter.Seq2[*ima.Entry, error] {
	return func(yield func(*ima.Entry, error) bool) {
		for _, e := range s {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// roundCtx is what the rules need of a round.
type roundCtx struct {
	eventLog, pcrs pcr.Set
}

func (r *roundCtx) hasBootSources() bool {
	return len(BootAggregates("", r.eventLog)) > 0 || len(BootAggregates("", r.pcrs)) > 0
}

// PCRResult is the verdict for one quoted (bank, PCR).
type PCRResult struct {
	Bank string `json:"bank"`
	PCR  int    `json:"pcr"`
	// Quoted is the value given, Replayed the list's value at the match
	// (or after the last entry read when it does not match).
	Quoted   string `json:"quoted"`
	Replayed string `json:"replayed"`
	Matched  bool   `json:"matched"`
	// Entry is the number of list entries (from the start of the list)
	// whose replay gives Quoted, when matched.
	Entry   int    `json:"entry,omitempty"`
	Variant string `json:"variant,omitempty"`
}

// Report is the result of a round: every failure, the PCR and boot
// aggregate verdicts. A failed check is data here; Verify's error is for
// input that could not be checked.
type Report struct {
	// First is the index of the round's first entry (State.Next before).
	First int `json:"first"`
	// Read entries were read; Consumed of them were verified and passed
	// into the new State (fewer than Read when the list ran ahead of the
	// quote).
	Read     int      `json:"read"`
	Consumed int      `json:"consumed"`
	ListBank string   `json:"list_bank,omitempty"`
	Banks    []string `json:"banks"`
	// Failures in entry order (list-level ones, Entry -1, last), at most
	// Options.MaxFailures; FailureCount counts them all and FailedEntries
	// the entries with at least one.
	Failures      []Failure `json:"failures"`
	FailureCount  int       `json:"failure_count"`
	FailedEntries int       `json:"failed_entries"`
	// PriorFailed are failing entries of earlier rounds (State.Failed).
	PriorFailed   int                  `json:"prior_failed,omitempty"`
	Violations    int                  `json:"violations"`
	BootAggregate *BootAggregateResult `json:"boot_aggregate,omitempty"`
	PCRs          []PCRResult          `json:"pcrs,omitempty"`
	// Quoted: the round checked PCR values; Matched: they matched.
	Quoted  bool `json:"quoted"`
	Matched bool `json:"matched"`
}

// Pass reports whether the list passes: no failure this round, none
// before.
func (r *Report) Pass() bool { return r.FailureCount == 0 && r.PriorFailed == 0 }

// Err returns nil when the round found nothing, else a *FailedError.
func (r *Report) Err() error {
	if r.FailureCount == 0 {
		return nil
	}
	e := &FailedError{Count: r.FailureCount}
	if len(r.Failures) > 0 {
		e.First = r.Failures[0]
	}
	return e
}

// Verify judges the entries of one round. prev is the State after the
// previous round (nil or zero: the list starts here). It returns the Report,
// the State to store with it, and an error only when the input could not be
// checked (unreadable entries, a State that does not fit the list); then
// nothing is returned and prev stays valid.
//
// Without Quoted every entry read is consumed. With Quoted, the entries
// are replayed from the State's PCR values in every quoted bank; the new
// State ends at the last entry at which every quoted bank matches (the
// list, read after the quote, may run ahead), and no match in some bank is
// an IDPCRMismatch failure with the State not advanced.
func (p *Policy) Verify(prev *State, r Round) (*Report, *State, error) {
	if prev == nil {
		prev = &State{}
	}
	starts, learnedKeys, err := prev.decode()
	if err != nil {
		return nil, nil, err
	}
	ctx := &roundCtx{eventLog: r.EventLog, pcrs: r.PCRs}
	pl := &plan{p: p, ctx: ctx, first: prev.Next}
	if prev.ListBank != "" {
		if pl.listBank, err = pcr.ParseBank(prev.ListBank); err != nil || !pl.listBank.Known() {
			return nil, nil, fmt.Errorf("verify: state: list bank %q", prev.ListBank)
		}
	}
	quoted := len(r.Quoted) > 0
	laneSpecs, err := p.laneSpecs(starts, prev, r.Quoted)
	if err != nil {
		return nil, nil, err
	}
	rep := &Report{First: prev.Next, Quoted: quoted, PriorFailed: prev.Failed}

	var (
		pp      *pipeline
		cur     *batch
		n       int
		fieldb  [ima.MaxTemplateFields]ima.Field
		readErr error
	)
	keys := learnedKeys
	setup := func(listSize int) error {
		if pl.listBank == 0 {
			b, ok := pcr.BankForSize(listSize)
			if !ok {
				return fmt.Errorf("verify: listed template digests of %d bytes belong to no known bank", listSize)
			}
			pl.listBank = b
		}
		if pl.listBank.Size() != listSize {
			return fmt.Errorf("verify: listed template digests are %d bytes, the list's bank %s has %d", listSize, pl.listBank, pl.listBank.Size())
		}
		pl.listSize = listSize
		pl.listSlot = pl.slotOf(pl.listBank)
		for _, ls := range laneSpecs {
			l := newLane(ls.bank, ls.padded, ls.values, r.Quoted[ls.bank], prev.Next)
			l.slot = pl.slotOf(ls.bank)
			if ls.padded {
				l.slot = pl.slotOf(pcr.SHA1)
			}
			pl.lanes = append(pl.lanes, l)
		}
		pp = newPipeline(pl, &p.pool, p.opts.MaxFailures)
		cur = pp.get(prev.Next)
		return nil
	}
	handle := func(e *ima.Entry) error {
		if pp == nil {
			if err := setup(len(e.Digest)); err != nil {
				return err
			}
		}
		if len(e.Digest) != pl.listSize {
			return fmt.Errorf("verify: entry %d: listed digest of %d bytes, the list's are %d", prev.Next+n, len(e.Digest), pl.listSize)
		}
		if e.PCR > pcr.MaxIndex {
			return fmt.Errorf("verify: entry %d: PCR %d", prev.Next+n, e.PCR)
		}
		if cur.n == batchEntries || (cur.n > 0 && len(cur.arena)+len(e.Data)+len(e.Digest)+512 > cap(cur.arena)) {
			cur.keys = keys[:len(keys):len(keys)]
			pp.send(cur)
			cur = pp.get(prev.Next + n)
		}
		fields, ferr := e.SplitFields(fieldb[:0])
		t, _ := e.Descriptor()
		legacy := t != nil && t.IsLegacy()
		s := cur.add(e, fields, legacy, ferr != nil)
		if ferr == nil && !s.viol {
			if k, ok := p.keyEntry(e, fields, prev.Next+n, pl, s); ok && len(keys) < MaxLearnedKeys {
				keys = append(keys, k)
			}
		}
		n++
		return nil
	}
	entries := r.Entries
	var lines *bufio.Reader
	if entries == nil && r.List != nil {
		br := bufio.NewReaderSize(r.List, 1<<20)
		if head, err := br.Peek(64 << 10); (err == nil || err == io.EOF || err == bufio.ErrBufferFull) && ima.LooksASCII(head) {
			lines = br
			pl.listOpts = r.ListOptions
		} else {
			entries = ima.ScanList(br, r.ListOptions)
		}
	}
	switch {
	case lines != nil:
		// The reader only splits lines; lines that may teach keys (ima-buf)
		// and the first are parsed here, in order, the rest by the workers.
		seq := ima.NewASCIIScanner(bytes.NewReader(nil), r.ListOptions)
		var long []byte
		for readErr == nil {
			line, err := lines.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				long = append(long[:0], line...)
				for err == bufio.ErrBufferFull {
					line, err = lines.ReadSlice('\n')
					long = append(long, line...)
					if len(long) > ima.MaxASCIILineLen {
						readErr = fmt.Errorf("verify: entry %d: line longer than %d bytes", prev.Next+n, ima.MaxASCIILineLen)
						break
					}
				}
				line = long
			}
			if err != nil && err != io.EOF {
				if readErr == nil {
					readErr = fmt.Errorf("verify: entry %d: %w", prev.Next+n, err)
				}
				break
			}
			if len(line) == 0 && err == io.EOF {
				break
			}
			if k := len(line) - 1; k >= 0 && line[k] == '\n' {
				line = line[:k] // not bytes.TrimSuffix: a call to memequal a line
			}
			if pp == nil || len(line) == len(long) || sequentialLine(line, 2*pl.listSize) {
				e, perr := seq.ParseLine(line)
				if perr != nil {
					readErr = lineError(prev.Next+n, n+1, perr)
					break
				}
				readErr = handle(e)
			} else {
				if cur.n == batchEntries || (cur.n > 0 && len(cur.arena)+3*len(line)+512 > cap(cur.arena)) {
					cur.keys = keys[:len(keys):len(keys)]
					pp.send(cur)
					cur = pp.get(prev.Next + n)
				}
				cur.addRaw(line)
				n++
			}
			if err == io.EOF {
				break
			}
		}
	case entries != nil:
		for e, ierr := range entries {
			if ierr != nil {
				readErr = fmt.Errorf("verify: entry %d: %w", prev.Next+n, ierr)
				break
			}
			if e == nil {
				readErr = fmt.Errorf("verify: entry %d: no entry", prev.Next+n)
				break
			}
			if readErr = handle(e); readErr != nil {
				break
			}
		}
	}
	if pp != nil {
		cur.keys = keys[:len(keys):len(keys)]
		pp.finish(cur)
		if readErr == nil {
			readErr = pp.col.err
		}
	}
	if err := p.wait(); err != nil {
		return nil, nil, err // a pending policy that could not be compiled
	}
	if readErr != nil {
		return nil, nil, readErr
	}
	rep.Read = n
	if pl.listBank != 0 {
		rep.ListBank = pl.listBank.String()
	}

	// The cut: the last prefix at which every quoted bank matches.
	lanes := pl.lanes
	if pp == nil { // no entries: lanes only to compare the State with the quote
		for _, ls := range laneSpecs {
			lanes = append(lanes, newLane(ls.bank, ls.padded, ls.values, r.Quoted[ls.bank], prev.Next))
		}
	}
	k, chosen, results, matched := p.cut(lanes, prev.Next, n, quoted)
	rep.PCRs, rep.Matched = results, matched
	for _, l := range chosen {
		rep.Banks = append(rep.Banks, l.bank.String())
	}
	var listFails []Failure
	if quoted && !matched {
		k = 0
		listFails = append(listFails, Failure{Entry: -1, ID: IDPCRMismatch,
			Message: "the list replays to the quoted PCR values at no entry in some bank"})
	} else if quoted && k != n && prev.Lag > 0 && k < prev.Lag {
		listFails = append(listFails, Failure{Entry: -1, ID: IDQuoteProgress,
			Message: fmt.Sprintf("the quote covers %d new entries, the previous round read %d past its quote", k, prev.Lag)})
	}
	rep.Consumed = k
	limit := prev.Next + k
	if quoted && !matched {
		limit = prev.Next + n // report what was read; the State does not advance
	}
	col := pp.collectorOrEmpty()
	if col.bypass && quoted && matched && col.boot != nil && col.boot.Entry < limit {
		// A TPM-bypass boot aggregate heading a list the TPM holds
		// (every quoted bank matched at a prefix that includes it).
		res, _ := p.CheckBootAggregate(col.boot.Entry, col.boot.Name, col.bypassDigest, r.EventLog, r.PCRs, true)
		col.boot = &res
		col.dropBypassFailure()
	}
	for _, f := range col.fails {
		if f.Entry < limit {
			rep.Failures = append(rep.Failures, f)
		}
	}
	rep.FailureCount = len(rep.Failures)
	if extra := col.count - len(col.fails); extra > 0 && (len(col.fails) == 0 || col.fails[len(col.fails)-1].Entry < limit) {
		rep.FailureCount += extra // beyond MaxFailures: counted, not kept
	}
	for _, e := range col.failed {
		if e < limit {
			rep.FailedEntries++
		}
	}
	for _, e := range col.violated {
		if e < limit {
			rep.Violations++
		}
	}
	if col.boot != nil && col.boot.Entry < limit {
		rep.BootAggregate = col.boot
	}
	rep.Failures = append(rep.Failures, listFails...)
	rep.FailureCount += len(listFails)

	next := p.nextState(prev, rep, chosen, k, n, r.Quoted, keys[:countKeysBefore(keys, prev.Next+k)], pl, col)
	if quoted && !matched {
		next = cloneState(prev)
	}
	return rep, next, nil
}

// sequentialLine reports whether an ascii line is one the reader parses
// itself: a template with a buffer (an ima-buf key may be learned from it).
// hexLen is the length of the list's template digests in hex: the name
// is looked for right after them first, without a walk over the digest
// (a digest field with a space in it is no digest: the worker's parser
// refuses that line as the reader's would).
func sequentialLine(line []byte, hexLen int) bool {
	rest := line
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:] // " 9 ..." (PCR below 10)
	}
	if len(rest) > 3 && (rest[1] == ' ' || rest[2] == ' ') { // a PCR of 1 or 2 digits
		k := 2
		if rest[1] == ' ' {
			k = 1
		}
		if k += 1 + hexLen; len(rest) > k && rest[k] == ' ' {
			return templateHasBuf(rest[k+1:])
		}
	}
	for range 2 { // the PCR, the template digest
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			return true
		}
		rest = rest[i+1:]
	}
	return templateHasBuf(rest)
}

// templateHasBuf reports whether the template name that starts rest (up
// to a space) holds "buf".
func templateHasBuf(rest []byte) bool {
	if j := bytes.IndexByte(rest, ' '); j >= 0 {
		rest = rest[:j]
	}
	// (a template name is short: a loop, not bytes.Contains's call)
	for i := 0; i+2 < len(rest); i++ {
		if rest[i] == 'b' && rest[i+1] == 'u' && rest[i+2] == 'f' {
			return true
		}
	}
	return false
}

func (pp *pipeline) collectorOrEmpty() *collector {
	if pp == nil {
		return &collector{}
	}
	return pp.col
}

func countKeysBefore(keys []learned, limit int) int {
	n := 0
	for _, k := range keys {
		if k.entry < limit {
			n++
		}
	}
	return n
}

// laneSpec is a bank and variant to replay.
type laneSpec struct {
	bank   pcr.Bank
	padded bool
	values map[int][]byte
}

// laneSpecs decides what to replay: the State's banks (each in its
// variant) once it has any; else the quoted banks (also in the padded
// SHA-1 variant for banks other than sha1, and sha256 unless asked); else
// Options.Banks.
func (p *Policy) laneSpecs(starts []laneStart, prev *State, quoted pcr.Set) ([]laneSpec, error) {
	var out []laneSpec
	if len(starts) > 0 {
		for _, s := range starts {
			out = append(out, laneSpec{bank: s.bank, padded: s.padded, values: s.values})
		}
		for _, b := range quoted.Banks() {
			if b.Known() && !slices.ContainsFunc(starts, func(s laneStart) bool { return s.bank == b }) {
				return nil, fmt.Errorf("verify: the quote has bank %s, the State has no running value for it (start over)", b)
			}
		}
		return out, nil
	}
	if prev.Next > 0 {
		return nil, fmt.Errorf("verify: state at entry %d has no PCR values", prev.Next)
	}
	if len(quoted) == 0 {
		for _, b := range p.banks {
			out = append(out, laneSpec{bank: b})
		}
		return out, nil
	}
	for _, b := range quoted.Banks() {
		if !b.Known() {
			continue
		}
		out = append(out, laneSpec{bank: b})
		if b != pcr.SHA1 && (b != pcr.SHA256 || p.opts.PaddedSHA256) {
			out = append(out, laneSpec{bank: b, padded: true})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("verify: the quote has no bank imago can replay")
	}
	if !slices.ContainsFunc(quoted.Banks(), func(b pcr.Bank) bool { _, ok := quoted.Get(b, p.opts.PCR); return ok && b.Known() }) {
		return nil, fmt.Errorf("verify: the quote has no value for PCR %d", p.opts.PCR)
	}
	return out, nil
}

// cut finds the last prefix k (entries of this round) at which every
// quoted bank matches, choosing per bank the variant that matches. Without
// a quote k is n and every lane is chosen.
func (p *Policy) cut(lanes []*lane, base, n int, quoted bool) (int, []*lane, []PCRResult, bool) {
	if !quoted {
		var chosen []*lane
		for _, l := range lanes {
			if !l.padded {
				chosen = append(chosen, l)
			}
		}
		return n, chosen, nil, true
	}
	// Per lane: the checked PCRs (quoted, and the list's PCR or extended)
	// and the intersection of their match intervals, in round prefixes.
	type iv struct{ from, to int }
	// span is the lane's match interval; checked 0: nothing to compare.
	span := func(l *lane) (iv, bool, uint64) {
		checked := l.hasWant & (l.touched | 1<<uint(p.opts.PCR))
		r := iv{0, n + 1}
		for i := range numPCRs {
			if checked&(1<<uint(i)) == 0 {
				continue
			}
			if l.from[i] < 0 {
				return iv{}, false, checked
			}
			t := n + 1
			if l.to[i] >= 0 {
				t = l.to[i] - base
			}
			r.from, r.to = max(r.from, l.from[i]-base), min(r.to, t)
		}
		return r, r.from < r.to, checked
	}
	var chosen []*lane
	var spans []iv
	var oks []bool
	all := iv{0, n + 1}
	matched := true
	for i := 0; i < len(lanes); i++ {
		l := lanes[i]
		if l.padded {
			continue
		}
		pick := l
		r, ok, checked := span(l)
		if checked == 0 {
			chosen, spans, oks = append(chosen, l), append(spans, r), append(oks, true)
			continue
		}
		if !ok {
			for _, o := range lanes {
				if o.padded && o.bank == l.bank {
					if r2, ok2, _ := span(o); ok2 {
						pick, r, ok = o, r2, true
					}
				}
			}
		}
		if !ok {
			matched = false
		} else {
			all.from, all.to = max(all.from, r.from), min(all.to, r.to)
		}
		chosen, spans, oks = append(chosen, pick), append(spans, r), append(oks, ok)
	}
	if matched && all.from >= all.to {
		matched = false
	}
	k := 0
	if matched {
		k = all.to - 1
	}
	var results []PCRResult
	for j, l := range chosen {
		_, _, checked := span(l)
		for i := range numPCRs {
			if checked&(1<<uint(i)) == 0 {
				continue
			}
			// A bank that matches on its own is reported matched (at the
			// round's cut, or at its own last match when another bank
			// fails); the verdict is IDPCRMismatch all the same.
			res := PCRResult{Bank: l.bank.String(), PCR: i, Quoted: hex.EncodeToString(l.want[i][:l.size]), Matched: oks[j]}
			if l.padded {
				res.Variant = variantPadded
			}
			switch {
			case matched:
				res.Replayed, res.Entry = res.Quoted, base+k
			case oks[j]:
				res.Replayed, res.Entry = res.Quoted, base+spans[j].to-1
			default:
				res.Replayed = hex.EncodeToString(l.value[i][:l.size])
			}
			results = append(results, res)
		}
	}
	return k, chosen, results, matched
}

// nextState is the State after consuming k entries of the round.
func (p *Policy) nextState(prev *State, rep *Report, chosen []*lane, k, n int, quoted pcr.Set, keys []learned, pl *plan, col *collector) *State {
	s := &State{Next: prev.Next + k, ListBank: prev.ListBank, BootAggregate: prev.BootAggregate, Late: prev.Late,
		Failed: prev.Failed + rep.FailedEntries, FirstFailed: prev.FirstFailed}
	if rep.FailureCount > 0 && rep.FailedEntries == 0 {
		s.Failed++ // a list-level failure (quote progress) stays too
	}
	if s.ListBank == "" && pl.listBank != 0 {
		s.ListBank = pl.listBank.String()
	}
	if prev.Failed == 0 && rep.FailedEntries > 0 {
		for _, e := range col.failed {
			s.FirstFailed = e
			break
		}
	}
	if rep.BootAggregate != nil && s.BootAggregate == "" {
		s.BootAggregate, s.Late = rep.BootAggregate.Verdict, rep.BootAggregate.Late
	}
	if len(quoted) > 0 {
		s.Lag = n - k
	}
	for _, l := range chosen {
		variant := ""
		if l.padded {
			variant = variantPadded
		}
		for i := range numPCRs {
			bit := uint64(1) << uint(i)
			var v []byte
			switch {
			case k == n && l.touched&bit != 0:
				v = l.value[i][:l.size]
			case l.hasWant&bit != 0 && (l.touched&bit != 0 || i == p.opts.PCR):
				v = l.want[i][:l.size]
			default:
				continue
			}
			s.PCRs = append(s.PCRs, PCRValue{Bank: l.bank.String(), PCR: i, Value: hex.EncodeToString(v), Variant: variant})
		}
	}
	for _, kk := range keys {
		s.Keys = append(s.Keys, LearnedKey{Keyring: kk.keyring, Entry: kk.entry, KeyID: kk.key.KeyID, Data: kk.data})
	}
	return s
}

func cloneState(s *State) *State {
	c := *s
	c.PCRs = slices.Clone(s.PCRs)
	c.Keys = slices.Clone(s.Keys)
	return &c
}

// keyEntry judges, in entry order, an ima-buf entry whose buffer is a key:
// its verdict decides whether later ima-sig entries may use the key. It
// records the verdict in s and returns the key to learn.
func (p *Policy) keyEntry(e *ima.Entry, fields []ima.Field, idx int, pl *plan, s *slot) (learned, bool) {
	if !slices.ContainsFunc(fields, func(f ima.Field) bool { return f.ID == ima.FieldBuf }) {
		return learned{}, false
	}
	p.wait() // the keyring rules need the policy (an error compiling it is Verify's)
	var v view
	v.index, v.pcr, v.template = idx, int(e.PCR), e.Template
	fillView(&v, fields)
	if !v.bufField || !v.hasName || !v.digestOK {
		return learned{}, false
	}
	key, err := digsig.ParseKey(v.buf)
	if errors.Is(err, digsig.ErrNotKey) || errors.Is(err, digsig.ErrTooLarge) {
		return learned{}, false
	}
	s.isKey = true
	if err != nil {
		s.keyFails = []Failure{{Entry: idx, Path: string(v.name), ID: IDInvalidKey, Template: v.template,
			Message: "the key on keyring " + string(v.name) + " cannot be used: " + err.Error()}}
		return learned{}, false
	}
	if IsBootAggregateName(v.name) {
		return learned{}, false
	}
	fails, learn := p.keyRule(&v, nil)
	s.keyFails = fails
	// A key is learned only from an entry whose template digest holds and
	// that the rules pass (Keylime adds it after validation).
	if !learn || !p.keysMode() || int(e.PCR) != p.opts.PCR {
		return learned{}, false
	}
	if td := e.TemplateDigest(pl.listBank); td == nil || string(td) != string(e.Digest) {
		return learned{}, false
	}
	return learned{entry: idx, keyring: string(v.name), key: key, data: append([]byte(nil), v.buf...)}, true
}
