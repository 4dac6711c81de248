package verify

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
)

// Pipeline sizes. A batch holds up to batchEntries entries or about
// batchArena bytes of template data; at most batchesInFlight batches exist,
// so memory is bounded whatever the length of the list.
const (
	batchEntries    = 512
	batchArena      = 256 << 10
	batchesInFlight = 8
	maxDigest       = 64
	numPCRs         = pcr.MaxIndex + 1
)

// span is [off, end) in a batch's arena; off -1 means absent.
type span struct{ off, end int32 }

func (s span) of(a []byte) []byte {
	if s.off < 0 {
		return nil
	}
	return a[s.off:s.end:s.end]
}

// slot is one entry copied into a batch: nothing aliases the iterator's
// entry, which a Scanner reuses.
type slot struct {
	pending  bool // raw holds an ascii line the worker parses
	raw      span
	pcr      uint8
	viol     bool
	isKey    bool // a buffer holding a key: the reader judged it
	parseErr bool // template data that does not split into its fields
	template string
	input    span // the hash input (template data; legacy ima: padded), then its SHA padding up to pend
	pend     int32
	name     span // the n-ng or n field, without its NUL
	listed   span // the listed template digest
	fields   [ima.MaxTemplateFields]fieldSpan
	nfields  int
	keyFails []Failure // the reader's verdict on a key buffer
}

type fieldSpan struct {
	id string
	s  span
}

// batch is a run of consecutive entries.
type batch struct {
	base  int // index of the first entry in the list
	n     int
	slots [batchEntries]slot
	arena []byte
	// digests[j] holds the n template digests of plan.digestBanks[j],
	// maxDigest bytes apart; bad[i] marks a listed digest that differs.
	digests [][]byte
	bad     [batchEntries]bool
	// Written by the worker: failures in entry order, the boot
	// aggregate's verdict, a line that could not be read.
	fails []Failure
	boot  *BootAggregateResult
	err   error
	// bypass: the batch holds the list's first entry with a TPM-bypass
	// boot aggregate; bypassFail is the index of its failure in fails
	// (-1 for none).
	bypass       bool
	bypassDigest ima.Digest
	bypassFail   int
	// keys are the keys learned up to the end of the batch.
	keys  []learned
	ready chan struct{}
	refs  atomic.Int32
	free  chan *batch
}

func (b *batch) release() {
	if b.refs.Add(-1) == 0 {
		b.free <- b
	}
}

func (b *batch) reset(base int) {
	b.base, b.n = base, 0
	b.arena = b.arena[:0]
	b.fails = b.fails[:0]
	b.boot = nil
	b.keys = nil
	b.err = nil
	b.bypass, b.bypassFail = false, -1
}

// add copies e into the batch. fields are e's fields.
func (b *batch) add(e *ima.Entry, fields []ima.Field, legacy bool, parseErr bool) *slot {
	s := &b.slots[b.n]
	b.n++
	b.fill(s, e, fields, legacy, parseErr)
	return s
}

// addRaw copies an ascii line into the batch, for a worker to parse.
func (b *batch) addRaw(line []byte) {
	s := &b.slots[b.n]
	b.n++
	start := int32(len(b.arena))
	b.arena = append(b.arena, line...)
	*s = slot{pending: true, raw: span{start, int32(len(b.arena))}, name: span{-1, -1}}
}

// fill copies e into slot s.
func (b *batch) fill(s *slot, e *ima.Entry, fields []ima.Field, legacy bool, parseErr bool) {
	*s = slot{pcr: uint8(e.PCR), viol: e.IsViolation(), template: e.Template, parseErr: parseErr, name: span{-1, -1}}
	start := int32(len(b.arena))
	b.arena = append(b.arena, e.Digest...)
	s.listed = span{start, int32(len(b.arena))}
	in := int32(len(b.arena))
	b.arena = e.AppendHashInput(b.arena)
	s.input = span{in, int32(len(b.arena))}
	b.arena = pcr.AppendPadding(b.arena, int(s.input.end-s.input.off)) // one padded message for every bank's hash
	s.pend = int32(len(b.arena))
	// Field offsets inside the copied data: u32 length then data for each
	// field (ima-spec.md §3.3); the legacy template is d then n.
	off := in
	for i, f := range fields {
		if i >= len(s.fields) {
			break
		}
		if legacy {
			s.fields[i] = fieldSpan{f.ID, span{off, off + int32(len(f.Data))}}
			off += int32(len(f.Data))
		} else {
			off += 4
			s.fields[i] = fieldSpan{f.ID, span{off, off + int32(len(f.Data))}}
			off += int32(len(f.Data))
		}
		s.nfields = i + 1
		if f.ID == ima.FieldNNG || f.ID == ima.FieldN {
			s.name = s.fields[i].s
			if n := len(f.Data); n > 0 && f.Data[n-1] == 0 {
				s.name.end--
			}
		}
	}
}

// plan is what one round computes.
type plan struct {
	p           *Policy
	listBank    pcr.Bank
	listSize    int
	digestBanks []pcr.Bank // template digests computed by the workers
	listSlot    int
	lanes       []*lane
	ctx         *roundCtx
	listOpts    ima.ReaderOptions // raw ascii lines
	// deferring: workers keep entries for judgeDeferred while the policy
	// is compiled (a pending policy, the pipeline started);
	// deferredBytes is what they keep.
	deferring     bool
	deferredBytes atomic.Int64
}

func (pl *plan) slotOf(b pcr.Bank) int {
	for i, d := range pl.digestBanks {
		if d == b {
			return i
		}
	}
	pl.digestBanks = append(pl.digestBanks, b)
	return len(pl.digestBanks) - 1
}

// worker computes template digests and verdicts of whole batches; batches
// are independent (learned keys travel with them), so several run at once.
type worker struct {
	pl      *plan
	parser  *ima.ASCIIReader // for raw lines; made at the first one (a round of entries has none)
	sink    byte
	sum     [pcr.MaxDigestSize]byte
	keys    []digsig.Key
	fieldb  [ima.MaxTemplateFields]ima.Field
	hashers []*pcr.Hasher // one per plan.digestBanks
	names   [batchEntries][]byte
	hashes  [batchEntries]uint64
	// Entries whose content rules need only their path and digest, kept
	// while a pending policy is compiled (Options.Pending), in entry
	// order; the failures they were found to have once judged.
	deferred []*deferredChunk
	dfails   []Failure
	dboot    *deferredBoot
}

// deferredChunk holds up to batchEntries deferred entries, their bytes in
// arena (never grown: a chunk is full when an entry does not fit).
type deferredChunk struct {
	ents  []deferredEntry
	arena []byte
}

// deferredArena is a chunk's arena: room for batchEntries paths of 64
// bytes and their digests; a longer path gets a chunk of its own size.
const deferredArena = batchEntries * 128

// deferredEntrySize is about the size of a deferredEntry, for the count of
// the memory kept.
const deferredEntrySize = 64

// deferredEntry is an entry whose verdict waits for the policy: its path
// and file digest (spans of its chunk's arena); boot: a boot aggregate,
// judged by CheckBootAggregate.
type deferredEntry struct {
	index    int
	template string
	alg      ima.HashAlg
	sum      span
	name     span
	boot     bool
}

// deferredBoot is the verdict on a deferred boot aggregate, as a batch
// carries it (batch.boot, bypass, bypassDigest; fail indexes its failure
// in worker.dfails, -1 for none).
type deferredBoot struct {
	res          *BootAggregateResult
	bypass       bool
	bypassDigest ima.Digest
	fail         int
}

func newWorker(pl *plan) *worker {
	w := &worker{pl: pl}
	for _, b := range pl.digestBanks {
		w.hashers = append(w.hashers, b.NewHasher())
	}
	return w
}

// parse turns the batch's raw lines into entries. A line that does not
// parse ends the batch there: b.n is cut to it and b.err says why.
func (w *worker) parse(b *batch) {
	for i := 0; i < b.n; i++ {
		s := &b.slots[i]
		if !s.pending {
			continue
		}
		if w.parser == nil {
			w.parser = ima.NewASCIIScanner(bytes.NewReader(nil), w.pl.listOpts)
		}
		e, err := w.parser.ParseLine(s.raw.of(b.arena))
		if err == nil && len(e.Digest) != w.pl.listSize {
			err = fmt.Errorf("listed digest of %d bytes, the list's are %d", len(e.Digest), w.pl.listSize)
		}
		if err != nil {
			b.err = fmt.Errorf("verify: entry %d: %w", b.base+i, err)
			b.n = i
			return
		}
		t, _ := e.Descriptor()
		b.fill(s, e, e.Fields, t != nil && t.IsLegacy(), false)
	}
}

func (w *worker) run(b *batch) {
	pl := w.pl
	w.parse(b)
	for j, bank := range pl.digestBanks {
		out := b.digests[j]
		size := bank.Size()
		h := w.hashers[j]
		for i := 0; i < b.n; i++ {
			s := &b.slots[i]
			if s.viol {
				b.bad[i] = false
				continue
			}
			h.SumPadded(&w.sum, b.arena[s.input.off:s.pend], int(s.input.end-s.input.off))
			copy(out[i*maxDigest:], w.sum[:size])
			if j == pl.listSlot {
				b.bad[i] = string(w.sum[:size]) != string(s.listed.of(b.arena))
			}
		}
	}
	p := pl.p
	// With a policy still being compiled, the content rules of entries the
	// digest rule alone decides wait (deferEntry); the first other entry
	// waits for the policy.
	deferring := pl.deferring && !p.compiled()
	if !deferring {
		w.judgeDeferred()
		w.warm(b, 0)
	}
	for i := 0; i < b.n; i++ {
		s := &b.slots[i]
		idx := b.base + i
		v := view{index: idx, pcr: int(s.pcr), template: s.template}
		fields := w.fieldb[:s.nfields]
		for k := range fields {
			fields[k] = ima.Field{ID: s.fields[k].id, Data: s.fields[k].s.of(b.arena)}
		}
		fillView(&v, fields)
		if int(s.pcr) != p.opts.PCR {
			b.fails = append(b.fails, Failure{Entry: idx, Path: string(v.name), ID: IDIMAPCR, Template: s.template,
				Got: strconv.Itoa(int(s.pcr)), Message: "extended into PCR " + strconv.Itoa(int(s.pcr)) + ", not " + strconv.Itoa(p.opts.PCR)})
		}
		switch {
		case s.viol:
			if !p.opts.AllowViolations {
				b.fails = append(b.fails, Failure{Entry: idx, Path: string(v.name), ID: IDViolation, Template: s.template,
					Message: "violation: measured while open for write, or written while open for read (zero template digest)"})
			}
			continue
		case b.bad[i]:
			b.fails = append(b.fails, Failure{Entry: idx, Path: string(v.name), ID: IDTemplateHash, Template: s.template,
				Expected: []string{hex.EncodeToString(s.listed.of(b.arena))},
				Got:      hex.EncodeToString(b.digests[pl.listSlot][i*maxDigest : i*maxDigest+pl.listSize]),
				Message:  "the listed template digest is not the hash of the template data"})
			continue
		case s.parseErr:
			b.fails = append(b.fails, Failure{Entry: idx, ID: IDParser, Template: s.template,
				Message: "template data does not split into the template's fields"})
			continue
		}
		if deferring {
			if deferrable(&v, s) && w.deferEntry(&v) {
				continue
			}
			deferring = false
			w.judgeDeferred()
			w.warm(b, i)
		}
		if p.rp != nil && w.names[i] != nil && len(w.names[i]) == len(v.name) {
			v.hash, v.hashed = w.hashes[i], true // the warmed name is the name judged (no NUL inside)
		}
		var boot *BootAggregateResult
		nf := len(b.fails)
		b.fails, boot = p.judge(&v, w.keysFor(b, idx), s.isKey, s.keyFails, pl.ctx, b.fails)
		if boot != nil && b.boot == nil {
			b.boot = boot
			if isBypassHead(&v) {
				b.bypass, b.bypassDigest = true, ima.Digest{Alg: v.digest.Alg, Sum: bytes.Clone(v.digest.Sum)}
				if len(b.fails) > nf {
					b.bypassFail = nf
				}
			}
		}
	}
	close(b.ready)
}

// warm prepares the lookups of the batch's paths from entry i on, once
// the policy is compiled (see Compiled.WarmPaths).
func (w *worker) warm(b *batch, from int) {
	p := w.pl.p
	if p.wait() != nil || p.rp == nil {
		return
	}
	for i := from; i < b.n; i++ {
		w.names[i] = nil
		if s := &b.slots[i]; s.name.off >= 0 && !s.viol {
			w.names[i] = s.name.of(b.arena)
		}
	}
	w.sink ^= p.rp.WarmPaths(w.names[from:b.n], w.hashes[from:b.n])
}

// deferrable reports whether the entry's content rules need nothing but
// its path and file digest: the digest rule (judge's last cases: no
// signature, buffer or key), or the boot aggregate rule.
func deferrable(v *view, s *slot) bool {
	return v.hasName && v.digestOK && len(v.sig) == 0 && !v.bufField && !s.isKey
}

// deferEntry keeps the entry for judgeDeferred, unless that would take the
// memory of the chunks kept past MaxDeferred.
func (w *worker) deferEntry(v *view) bool {
	size := len(v.name) + len(v.digest.Sum)
	var c *deferredChunk
	if n := len(w.deferred); n > 0 {
		c = w.deferred[n-1]
	}
	if c == nil || len(c.ents) == cap(c.ents) || len(c.arena)+size > cap(c.arena) {
		arena := max(deferredArena, size)
		cost := int64(arena + batchEntries*deferredEntrySize)
		if w.pl.deferredBytes.Add(cost) > w.pl.p.maxDeferred {
			w.pl.deferredBytes.Add(-cost)
			return false
		}
		c = &deferredChunk{ents: make([]deferredEntry, 0, batchEntries), arena: make([]byte, 0, arena)}
		w.deferred = append(w.deferred, c)
	}
	d := deferredEntry{index: v.index, template: v.template, alg: v.digest.Alg, boot: IsBootAggregateName(v.name)}
	d.sum.off = int32(len(c.arena))
	c.arena = append(c.arena, v.digest.Sum...)
	d.sum.end = int32(len(c.arena))
	d.name.off = d.sum.end
	c.arena = append(c.arena, v.name...)
	d.name.end = int32(len(c.arena))
	c.ents = append(c.ents, d)
	w.pl.p.deferred.Add(1)
	return true
}

// judgeDeferred waits for the policy and judges the deferred entries, a
// chunk at a time, their lookups warmed: by the digest rule, or the boot
// aggregate rule as judge applies them.
func (w *worker) judgeDeferred() {
	if len(w.deferred) == 0 {
		return
	}
	p := w.pl.p
	if p.wait() != nil {
		return // Verify returns the error
	}
	var cost int64
	for _, c := range w.deferred {
		cost += int64(cap(c.arena) + batchEntries*deferredEntrySize)
		for i, d := range c.ents {
			w.names[i] = d.name.of(c.arena)
		}
		if p.rp != nil {
			w.sink ^= p.rp.WarmPaths(w.names[:len(c.ents)], w.hashes[:len(c.ents)])
		}
		for i, d := range c.ents {
			v := view{index: d.index, template: d.template, name: w.names[i], hasName: true,
				digest: ima.Digest{Alg: d.alg, Sum: d.sum.of(c.arena)}, digestOK: true, hash: w.hashes[i], hashed: p.rp != nil}
			if !d.boot {
				w.dfails = p.digestRule(&v, lookupDigests, w.dfails)
				continue
			}
			// judge's boot aggregate case, as a batch records it
			nf := len(w.dfails)
			res, f := p.CheckBootAggregate(v.index, string(v.name), v.digest, w.pl.ctx.eventLog, w.pl.ctx.pcrs, false)
			if f != nil {
				f.Template = v.template
				w.dfails = append(w.dfails, *f)
			}
			if w.dboot == nil || res.Entry < w.dboot.res.Entry {
				db := &deferredBoot{res: &res, fail: -1}
				if isBypassHead(&v) {
					db.bypass, db.bypassDigest = true, ima.Digest{Alg: v.digest.Alg, Sum: bytes.Clone(v.digest.Sum)}
					if len(w.dfails) > nf {
						db.fail = nf
					}
				}
				w.dboot = db
			}
		}
	}
	w.pl.deferredBytes.Add(-cost)
	clear(w.deferred)
	w.deferred = w.deferred[:0]
}

// keysFor returns the keys an entry may be verified with: the policy's and
// those learned before it.
func (w *worker) keysFor(b *batch, idx int) []digsig.Key {
	w.keys = append(w.keys[:0], w.pl.p.keys...)
	for _, k := range b.keys {
		if k.entry < idx {
			w.keys = append(w.keys, k.key)
		}
	}
	return w.keys
}

// lane replays one bank in one variant, in entry order.
type lane struct {
	bank    pcr.Bank
	h       *pcr.Hasher
	size    int
	padded  bool
	slot    int // digests of this bank (padded: of sha1)
	viol    []byte
	value   [numPCRs][maxDigest]byte
	touched uint64 // PCRs extended (in the state or this round)
	// quoted PCRs and their match interval over prefix lengths k of the
	// round: value(k) == want for k in [from, to); to -1 is open.
	hasWant uint64
	want    [numPCRs][maxDigest]byte
	from    [numPCRs]int
	to      [numPCRs]int
	in      chan *batch
}

func newLane(b pcr.Bank, padded bool, start map[int][]byte, quoted map[int][]byte, base int) *lane {
	l := &lane{bank: b, h: b.NewHasher(), size: b.Size(), padded: padded}
	l.viol = pcr.ViolationDigest(l.size, !padded)
	for i, v := range start {
		copy(l.value[i][:], v)
		l.touched |= 1 << uint(i)
	}
	for i := range l.from {
		l.from[i], l.to[i] = -1, -1
	}
	for i, v := range quoted {
		if i < 0 || i >= numPCRs || len(v) != l.size {
			continue
		}
		l.hasWant |= 1 << uint(i)
		copy(l.want[i][:], v)
		if string(l.want[i][:l.size]) == string(l.value[i][:l.size]) {
			l.from[i] = base // matches before the round's first entry
		}
	}
	return l
}

func (l *lane) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for b := range l.in {
		<-b.ready
		l.process(b)
		b.release()
	}
}

func (l *lane) process(b *batch) {
	var d [maxDigest]byte
	digs := b.digests[l.slot]
	for i := 0; i < b.n; i++ {
		p := b.slots[i].pcr
		var ext []byte
		switch {
		case b.slots[i].viol:
			ext = l.viol
		case l.padded:
			copy(d[:20], digs[i*maxDigest:])
			ext = d[:l.size]
		default:
			ext = digs[i*maxDigest : i*maxDigest+l.size]
		}
		// Extend (TPM 2.0 Part 1 §17.2): value := H(value || digest).
		vp := &l.value[p]
		l.h.Extend(vp, ext)
		v := vp[:l.size]
		bit := uint64(1) << p
		l.touched |= bit
		if l.hasWant&bit != 0 {
			k := b.base + i + 1 // prefix length, in list indexes
			if string(v) == string(l.want[p][:l.size]) {
				if l.from[p] < 0 {
					l.from[p] = k
				}
			} else if l.from[p] >= 0 && l.to[p] < 0 {
				l.to[p] = k
			}
		}
	}
}

// collector gathers the workers' failures in entry order.
type collector struct {
	err      error // the first line that could not be read
	in       chan *batch
	fails    []Failure
	count    int
	max      int
	failed   []int // indexes of failing entries
	boot     *BootAggregateResult
	violated []int
	// The list's first entry is a TPM-bypass boot aggregate (batch.bypass);
	// bypassFail indexes its failure in fails (-1 for none).
	bypass       bool
	bypassDigest ima.Digest
	bypassFail   int
}

func (c *collector) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for b := range c.in {
		<-b.ready
		c.process(b)
		b.release()
	}
}

func (c *collector) process(b *batch) {
	if c.err != nil {
		return // entries after an unreadable line do not count
	}
	c.err = b.err
	last := -1
	if b.bypass {
		c.bypass, c.bypassDigest, c.bypassFail = true, b.bypassDigest, -1
	}
	for i, f := range b.fails {
		c.count++
		if len(c.fails) < c.max {
			if b.bypass && i == b.bypassFail {
				c.bypassFail = len(c.fails)
			}
			c.fails = append(c.fails, f)
		}
		if f.Entry != last {
			c.failed = append(c.failed, f.Entry)
			last = f.Entry
		}
	}
	for i := 0; i < b.n; i++ {
		if b.slots[i].viol {
			c.violated = append(c.violated, b.base+i)
		}
	}
	if c.boot == nil && b.boot != nil {
		bb := *b.boot
		c.boot = &bb
	}
}

// addDeferred merges the failures of deferred entries (in entry order)
// into the collector's, which stay in entry order: an entry's own failures
// found before (its PCR) come first; past max, failures are counted only.
// A deferred boot aggregate's verdict is taken as a batch's would be.
func (c *collector) addDeferred(fails []Failure, boot *deferredBoot) {
	if boot != nil && (c.boot == nil || boot.res.Entry < c.boot.Entry) {
		c.boot = boot.res
		c.bypass, c.bypassDigest, c.bypassFail = boot.bypass, boot.bypassDigest, -1
	}
	if len(fails) == 0 {
		return
	}
	c.count += len(fails)
	merged := make([]Failure, 0, len(c.fails)+len(fails))
	i := 0
	for k, f := range fails {
		// A bypass failure judged in a batch is the list's first entry's,
		// ahead of every deferred failure: its index stays.
		for i < len(c.fails) && c.fails[i].Entry <= f.Entry {
			merged = append(merged, c.fails[i])
			i++
		}
		if boot != nil && boot.bypass && c.boot == boot.res && k == boot.fail {
			c.bypassFail = len(merged)
		}
		merged = append(merged, f)
	}
	merged = append(merged, c.fails[i:]...)
	c.fails = merged[:min(len(merged), c.max)]
	failed := make([]int, 0, len(c.failed)+len(fails))
	j := 0
	for _, f := range fails {
		for j < len(c.failed) && c.failed[j] < f.Entry {
			failed = append(failed, c.failed[j])
			j++
		}
		if j < len(c.failed) && c.failed[j] == f.Entry {
			continue // failed already (its PCR)
		}
		if n := len(failed); n == 0 || failed[n-1] != f.Entry {
			failed = append(failed, f.Entry)
		}
	}
	c.failed = append(failed, c.failed[j:]...)
}

// dropBypassFailure removes the failure of the TPM-bypass boot aggregate
// (the list's first entry), once the TPM is found to hold the list.
func (c *collector) dropBypassFailure() {
	i := c.bypassFail
	if i < 0 {
		return
	}
	c.fails = append(c.fails[:i], c.fails[i+1:]...)
	c.count--
	c.bypassFail = -1
	for _, f := range c.fails {
		if f.Entry == 0 {
			return // the entry fails for another reason too
		}
	}
	if len(c.failed) > 0 && c.failed[0] == 0 {
		c.failed = c.failed[1:]
	}
}

// pipeline runs a plan over batches the reader sends. Its goroutines
// start with the second batch: a round that fits one batch (the usual
// incremental round) runs on the caller's goroutine alone.
type pipeline struct {
	pl      *plan
	pool    *sync.Pool
	free    chan *batch
	all     []*batch
	work    chan *batch
	col     *collector
	workers []*worker
	workWG  sync.WaitGroup
	laneWG  sync.WaitGroup
	started bool
}

func newPipeline(pl *plan, pool *sync.Pool, maxFailures int) *pipeline {
	return &pipeline{pl: pl, pool: pool, free: make(chan *batch, batchesInFlight), col: &collector{max: maxFailures}}
}

// get returns an empty batch for entries from base on.
func (pp *pipeline) get(base int) *batch {
	var b *batch
	select {
	case b = <-pp.free:
	default:
		if len(pp.all) < batchesInFlight {
			b, _ = pp.pool.Get().(*batch)
			if b == nil {
				b = &batch{arena: make([]byte, 0, batchArena)}
			}
			for len(b.digests) < len(pp.pl.digestBanks) {
				b.digests = append(b.digests, make([]byte, batchEntries*maxDigest))
			}
			b.free = pp.free
			pp.all = append(pp.all, b)
		} else {
			b = <-pp.free
		}
	}
	b.reset(base)
	return b
}

func (pp *pipeline) start() {
	pl := pp.pl
	pp.work = make(chan *batch, batchesInFlight)
	workers := min(max(runtime.GOMAXPROCS(0), 1), 8)
	pl.deferring = !pl.p.compiled()
	for range workers {
		w := newWorker(pl)
		pp.workers = append(pp.workers, w)
		pp.workWG.Add(1)
		go func() {
			defer pp.workWG.Done()
			for b := range pp.work {
				w.run(b)
			}
			w.judgeDeferred()
		}()
	}
	for _, l := range pl.lanes {
		l.in = make(chan *batch, batchesInFlight)
		pp.laneWG.Add(1)
		go l.run(&pp.laneWG)
	}
	pp.col.in = make(chan *batch, batchesInFlight)
	pp.laneWG.Add(1)
	go pp.col.run(&pp.laneWG)
	pp.started = true
}

func (pp *pipeline) send(b *batch) {
	if !pp.started {
		pp.start()
	}
	b.refs.Store(int32(len(pp.pl.lanes) + 1))
	b.ready = make(chan struct{})
	pp.work <- b
	for _, l := range pp.pl.lanes {
		l.in <- b
	}
	pp.col.in <- b
}

// finish processes the last batch and waits for everything; the batches
// go back to the pool.
func (pp *pipeline) finish(last *batch) {
	switch {
	case !pp.started:
		if last.n > 0 {
			last.ready = make(chan struct{})
			newWorker(pp.pl).run(last)
			for _, l := range pp.pl.lanes {
				l.process(last)
			}
			pp.col.process(last)
		}
	default:
		if last.n > 0 {
			pp.send(last)
		}
		close(pp.work)
		pp.workWG.Wait()
		for _, l := range pp.pl.lanes {
			close(l.in)
		}
		close(pp.col.in)
		pp.laneWG.Wait()
		for _, w := range pp.workers {
			pp.col.addDeferred(w.dfails, w.dboot)
			w.dfails, w.dboot = nil, nil
		}
	}
	for _, b := range pp.all {
		b.fails, b.keys, b.boot, b.free = nil, nil, nil, nil
		for i := range b.slots[:b.n] {
			b.slots[i].keyFails = nil
		}
		pp.pool.Put(b)
	}
	pp.all = nil
}
