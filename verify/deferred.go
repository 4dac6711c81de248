package verify

import (
	"bytes"

	"github.com/imago-ima/imago/ima"
)

// deferredChunk holds up to batchEntries deferred entries, their bytes in
// arena (never grown: a chunk is full when an entry does not fit).
type deferredChunk struct {
	ents  []deferredEntry
	arena []byte
}

// deferredArena is a chunk's arena: room for batchEntries paths of 64
// bytes and their sha256 digests; a chunk with longer paths holds fewer,
// a longer path gets a chunk of its own size.
const deferredArena = batchEntries * 96

// deferredEntrySize is the size of a deferredEntry (on 64-bit machines),
// for the count of the memory kept.
const deferredEntrySize = 48

// deferredEntry is an entry whose verdict waits for the policy: its path
// and file digest (spans of its chunk's arena); boot: a boot aggregate,
// judged by CheckBootAggregate.
type deferredEntry struct {
	index    int
	template string
	sum      span
	name     span
	alg      ima.HashAlg
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
