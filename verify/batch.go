package verify

import (
	"sync/atomic"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
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
	// Only what parse reads: fill sets the rest (a slot is 456 bytes,
	// a million of them zeroed would cost more than reading the list).
	s.pending, s.raw = true, span{start, int32(len(b.arena))}
}

// fill copies e into slot s.
func (b *batch) fill(s *slot, e *ima.Entry, fields []ima.Field, legacy bool, parseErr bool) {
	start := len(b.arena)
	b.arena = append(b.arena, e.Digest...)
	b.arena = e.AppendHashInput(b.arena)
	b.fillAt(s, e, fields, legacy, parseErr, start)
}

// fillAt fills slot s for e, whose listed digest and then hash input are
// the arena from start on.
func (b *batch) fillAt(s *slot, e *ima.Entry, fields []ima.Field, legacy bool, parseErr bool, start int) {
	// Every field but fields[nfields:], which nothing reads, set without
	// zeroing the whole slot first.
	s.pending, s.raw, s.isKey, s.keyFails, s.nfields = false, span{}, false, nil, 0
	s.pcr, s.viol, s.template, s.parseErr, s.name = uint8(e.PCR), e.IsViolation(), e.Template, parseErr, span{-1, -1}
	in := int32(start + len(e.Digest))
	s.listed = span{int32(start), in}
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
