package replay

import (
	"fmt"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// Pipeline sizes. A batch holds up to batchEntries entries or batchArena
// bytes of hash input (one larger entry gets a batch of its own); at most
// batchesInFlight batches exist, so memory stays bounded whatever the list
// length.
const (
	batchEntries    = 512
	batchArena      = 128 << 10
	batchesInFlight = 6
)

const (
	maxDigest = 64 // sha512
	numPCRs   = pcr.MaxIndex + 1
)

// batch is a run of consecutive entries copied out of the iterator: the
// iterator may reuse its *ima.Entry, so nothing aliases it.
type batch struct {
	base   int // index of the first entry in the list
	n      int
	pcr    [batchEntries]uint8
	viol   [batchEntries]bool
	off    [batchEntries + 1]int // hash input i is arena[off[i]:off[i+1]]
	listed []byte                // n × listSize bytes, the listed digests
	arena  []byte
	// digests[j] holds n digests of the pipeline's digestBanks[j], each
	// in a maxDigest slot; bad[i] marks a listed digest that differs from
	// the recomputed one. Both are written by a digest worker before
	// ready is closed.
	digests [][]byte
	bad     [batchEntries]bool
	ready   chan struct{}
	refs    atomic.Int32
	free    chan *batch
}

func (b *batch) input(i int) []byte { return b.arena[b.off[i]:b.off[i+1]] }

func (b *batch) release() {
	if b.refs.Add(-1) == 0 {
		b.free <- b
	}
}

// sum writes H_b(data) to dst, which has room for maxDigest bytes. The
// one-shot Sum functions keep the hot path free of allocations and
// interface calls.
func sum(b pcr.Bank, dst *[maxDigest]byte, data []byte) {
	if !b.Sum(dst, data) {
		panic("imago: internal error: replay of unknown bank " + b.String())
	}
}

// laneKind says what a lane extends.
type laneKind uint8

const (
	lanePerBank   laneKind = iota // H_bank(hash input), §4.3
	lanePadded                    // SHA-1 template digest ‖ zeros, §4.4 (old kernels)
	laneCheckOnly                 // no extend: only the listed-digest check
)

// pairState follows one (bank, PCR) with a target value through the list.
// Prefix lengths k count entries applied (k = 0 before the first entry).
// The replayed value equals the target for k in [0, firstTouch) when the
// target is the reset value, and for k in [matchFrom, matchTo) (matchTo
// -1: to the end) after an extend produced it.
type pairState struct {
	firstTouch int // prefix length after the first entry on this PCR; -1 never
	matchFrom  int // -1 none
	matchTo    int // -1 open
}

// lane replays one bank in one variant, sequentially over the batches.
type lane struct {
	bank     pcr.Bank
	size     int
	kind     laneKind
	checkTD  bool     // this lane reports the template-digest check
	collect  bool     // collect the mismatches the digest workers flag
	listBank pcr.Bank // bank of the listed digests
	listSize int
	slot     int // index of this lane's digests in batch.digests (padded: SHA-1's)
	listSlot int // index of the list bank's digests

	in chan *batch

	value   [numPCRs][maxDigest]byte
	touched uint64 // bit i: PCR i was extended
	viol    [maxDigest]byte

	hasWant uint64
	want    [numPCRs][maxDigest]byte
	pairs   [numPCRs]pairState

	mismatches    []TemplateMismatch
	mismatchCount int
	maxMismatches int
}

func newLane(b pcr.Bank, kind laneKind, listBank pcr.Bank, listSize int, target pcr.Set, maxMismatches int) *lane {
	l := &lane{
		bank:          b,
		size:          b.Size(),
		kind:          kind,
		listBank:      listBank,
		listSize:      listSize,
		maxMismatches: maxMismatches,
	}
	// §5.2: a violation extends 0xFF over the bank size; under the padded
	// scheme the old kernel padded the 20-byte 0xFF digest with zeros, as
	// evmctl --ignore-violations does for its padded banks.
	copy(l.viol[:], pcr.ViolationDigest(l.size, kind != lanePadded))
	for i := range l.pairs {
		l.pairs[i] = pairState{firstTouch: -1, matchFrom: -1, matchTo: -1}
	}
	if kind != laneCheckOnly {
		for i, v := range target[b] {
			if i >= 0 && i < numPCRs && len(v) == l.size {
				l.hasWant |= 1 << uint(i)
				copy(l.want[i][:], v)
			}
		}
	}
	return l
}

func (l *lane) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for b := range l.in {
		l.process(b)
		b.release()
	}
}

func (l *lane) process(b *batch) {
	<-b.ready
	if l.collect {
		for i := 0; i < b.n; i++ {
			if b.bad[i] {
				listed := b.listed[i*l.listSize : (i+1)*l.listSize]
				got := b.digests[l.listSlot][i*maxDigest : i*maxDigest+l.listSize]
				l.mismatch(b.base+i, b.pcr[i], listed, got)
			}
		}
	}
	if l.kind == laneCheckOnly {
		return
	}
	var (
		d   [maxDigest]byte
		buf [2 * maxDigest]byte
	)
	size := l.size
	digs := b.digests[l.slot]
	for i := 0; i < b.n; i++ {
		p := b.pcr[i]
		var ext []byte
		switch {
		case b.viol[i]:
			ext = l.viol[:size]
		case l.kind == lanePadded:
			if l.listBank == pcr.SHA1 {
				copy(d[:20], b.listed[i*20:i*20+20])
			} else {
				copy(d[:20], digs[i*maxDigest:])
			}
			ext = d[:size] // d[20:] stays zero
		default:
			ext = digs[i*maxDigest : i*maxDigest+size]
		}
		// Extend (TPM 2.0 Part 1 §17.2): value := H(value || digest).
		v := &l.value[p]
		copy(buf[:size], v[:size])
		copy(buf[size:], ext)
		sum(l.bank, v, buf[:2*size])
		k := b.base + i + 1 // prefix length after this entry
		bit := uint64(1) << p
		if l.touched&bit == 0 {
			l.touched |= bit
			l.pairs[p].firstTouch = k
		}
		if l.hasWant&bit != 0 {
			st := &l.pairs[p]
			if string(v[:size]) == string(l.want[p][:size]) {
				if st.matchFrom < 0 {
					st.matchFrom = k
				}
			} else if st.matchFrom >= 0 && st.matchTo < 0 {
				st.matchTo = k
			}
		}
	}
}

// digestWork computes the template digests of a batch for every bank in
// banks (§4.1, §4.3) and compares the list bank's with the listed ones.
// Batches are independent, so several workers run this at once.
func digestWork(b *batch, banks []pcr.Bank, listSlot, listSize int) {
	var d [maxDigest]byte
	for j, bk := range banks {
		out := b.digests[j]
		for i := 0; i < b.n; i++ {
			if b.viol[i] {
				b.bad[i] = false
				continue
			}
			sum(bk, &d, b.input(i))
			copy(out[i*maxDigest:], d[:bk.Size()])
			if j == listSlot {
				b.bad[i] = string(d[:listSize]) != string(b.listed[i*listSize:(i+1)*listSize])
			}
		}
	}
	close(b.ready)
}

func (l *lane) mismatch(entry int, p uint8, listed, got []byte) {
	l.mismatchCount++
	if len(l.mismatches) < l.maxMismatches {
		l.mismatches = append(l.mismatches, TemplateMismatch{
			Entry:    entry,
			PCR:      int(p),
			Bank:     l.listBank,
			Listed:   append([]byte(nil), listed...),
			Computed: append([]byte(nil), got...),
		})
	}
}

// plan is what a pass computes: the template digests of digestBanks (by
// the digest workers, in parallel) and the lanes that extend them (each in
// order, on its own goroutine).
type plan struct {
	lanes       []*lane
	digestBanks []pcr.Bank
	listSlot    int
}

// pass reads the list once and runs the plan that setup returns. setup is
// called with the first entry's digest width, before any entry is
// processed; with an empty list it is not called. pass returns the number of
// entries and violations read.
func pass(seq iter.Seq2[*ima.Entry, error], setup func(listSize int) (*plan, error)) (n, violations int, err error) {
	var (
		pl       *plan
		listSize int
		lanesWG  sync.WaitGroup
		workWG   sync.WaitGroup
		work     chan *batch
		free     chan *batch
		cur      *batch
	)
	send := func(b *batch) {
		b.refs.Store(int32(len(pl.lanes)))
		b.ready = make(chan struct{})
		work <- b
		for _, l := range pl.lanes {
			l.in <- b
		}
	}
	defer func() {
		if pl == nil {
			return
		}
		close(work)
		workWG.Wait()
		for _, l := range pl.lanes {
			close(l.in)
		}
		lanesWG.Wait()
	}()
	for e, ierr := range seq {
		if ierr != nil {
			err = ierr // the source's error names the entry and the file
			break
		}
		if e == nil {
			err = fmt.Errorf("replay: entry %d: iterator yielded no entry", n)
			break
		}
		if pl == nil {
			listSize = len(e.Digest)
			p, serr := setup(listSize)
			if serr != nil {
				err = serr
				break
			}
			pl = p
			free = make(chan *batch, batchesInFlight)
			for range batchesInFlight {
				b := &batch{
					arena:   make([]byte, 0, batchArena),
					listed:  make([]byte, 0, batchEntries*listSize),
					digests: make([][]byte, len(pl.digestBanks)),
					free:    free,
				}
				for j := range b.digests {
					b.digests[j] = make([]byte, batchEntries*maxDigest)
				}
				free <- b
			}
			work = make(chan *batch, batchesInFlight)
			workers := min(max(runtime.GOMAXPROCS(0), 1), 8)
			for range workers {
				workWG.Add(1)
				go func() {
					defer workWG.Done()
					for b := range work {
						digestWork(b, pl.digestBanks, pl.listSlot, listSize)
					}
				}()
			}
			for _, l := range pl.lanes {
				l.in = make(chan *batch, batchesInFlight)
				lanesWG.Add(1)
				go l.run(&lanesWG)
			}
			cur = <-free
			cur.reset(0)
		}
		if e.PCR > pcr.MaxIndex {
			err = fmt.Errorf("replay: entry %d: PCR index %d exceeds %d", n, e.PCR, pcr.MaxIndex)
			break
		}
		if len(e.Digest) != listSize {
			err = fmt.Errorf("replay: entry %d: listed digest is %d bytes, the first entry's is %d", n, len(e.Digest), listSize)
			break
		}
		if cur.n == batchEntries || (cur.n > 0 && len(cur.arena)+len(e.Data)+256 > cap(cur.arena)) {
			send(cur)
			cur = <-free
			cur.reset(n)
		}
		if cur.add(e) {
			violations++
		}
		n++
	}
	if cur != nil && cur.n > 0 {
		send(cur)
	}
	return n, violations, err
}

func (b *batch) reset(base int) {
	b.base = base
	b.n = 0
	b.arena = b.arena[:0]
	b.listed = b.listed[:0]
	b.off[0] = 0
}

// add copies e into the batch and reports whether it is a violation.
func (b *batch) add(e *ima.Entry) bool {
	i := b.n
	v := e.IsViolation()
	b.pcr[i] = uint8(e.PCR)
	b.viol[i] = v
	b.listed = append(b.listed, e.Digest...)
	b.arena = e.AppendHashInput(b.arena)
	b.off[i+1] = len(b.arena)
	b.n++
	return v
}
