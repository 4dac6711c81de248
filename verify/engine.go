package verify

import (
	"bytes"
	"encoding/hex"
	"errors"
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
	maxDigest       = pcr.MaxDigestSize
	numPCRs         = pcr.MaxIndex + 1
)

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
	first       int               // the index of the round's first entry (its line 1)
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
		start := len(b.arena)
		e, arena, err := w.parser.ParseLineAppend(b.arena, s.raw.of(b.arena))
		if err == nil && len(e.Digest) != w.pl.listSize {
			err = fmt.Errorf("listed digest of %d bytes, the list's are %d", len(e.Digest), w.pl.listSize)
		}
		if err != nil {
			b.err = lineError(b.base+i, b.base+i-w.pl.first+1, err)
			b.n = i
			return
		}
		t, _ := e.Descriptor()
		legacy := t != nil && t.IsLegacy()
		b.arena = arena
		if len(arena) == start || legacy {
			// not appended (a legacy line never is: its hash input is
			// padded, AppendHashInput)
			b.arena = arena[:start]
			b.fill(s, e, e.Fields, legacy, false)
			continue
		}
		b.fillAt(s, e, e.Fields, false, false, start)
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
			sum := (*[pcr.MaxDigestSize]byte)(out[i*maxDigest:]) // straight into the batch
			h.SumPadded(sum, b.arena[s.input.off:s.pend], int(s.input.end-s.input.off))
			if j == pl.listSlot {
				b.bad[i] = string(sum[:size]) != string(s.listed.of(b.arena))
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
		var keys []digsig.Key
		if len(v.sig) > 0 { // keys verify a signature only (sigRule)
			keys = w.keysFor(b, idx)
		}
		b.fails, boot = p.judge(&v, keys, s.isKey, s.keyFails, pl.ctx, b.fails)
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

// lineError reports an ascii line the parser refused, at its entry index
// and its line in the round's input. The position the parser itself
// counts means nothing here: a parser sees only the lines given to it
// (one per worker, and the reader's own for buffer templates).
func lineError(entry, line int, err error) error {
	var fe *ima.FormatError
	if errors.As(err, &fe) {
		fe.Entry, fe.Offset = entry, int64(line)
		return fmt.Errorf("verify: %w", fe)
	}
	return fmt.Errorf("verify: entry %d: %w", entry, err)
}
