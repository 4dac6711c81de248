package runtimepolicy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/maphash"
)

// table maps names to digest lists in a compact form built for policies
// with millions of paths: records live back to back in large arena chunks
// (no allocation per name) and an open-addressing index of 8-byte slots
// finds them. The memory it holds is about the size of the names plus the
// binary digests, below the size of the policy's JSON text.
//
// A record is: u16 name length, name, u16 digest count, then per digest
// u8 length and the digest bytes.
type table struct {
	seed  maphash.Seed
	slots []uint64 // tag<<32 | (offset+1); 0 is empty
	n     int

	chunks [][]byte
	// rec is the record being built (begin, digest, end).
	rec record
}

const (
	chunkBits = 22 // 4 MiB chunks
	chunkSize = 1 << chunkBits
	maxChunks = 1<<(32-chunkBits) - 1
)

var errPolicyTooLarge = errors.New("the policy's digests need more than 4 GiB")

func newTable() *table { return &table{seed: maphash.MakeSeed()} }

// record builds one record: begin, then digest for each digest.
type record struct{ b []byte }

func (r *record) begin(name []byte) {
	r.b = append(r.b[:0], 0, 0)
	binary.LittleEndian.PutUint16(r.b, uint16(len(name)))
	r.b = append(r.b, name...)
	r.b = append(r.b, 0, 0)
}

// digest adds a digest (its bytes) to the record.
func (r *record) digest(d []byte) {
	r.b = append(r.b, byte(len(d)))
	r.b = append(r.b, d...)
	c := 2 + int(binary.LittleEndian.Uint16(r.b)) // count's position
	binary.LittleEndian.PutUint16(r.b[c:], binary.LittleEndian.Uint16(r.b[c:])+1)
}

func (t *table) begin(name []byte) { t.rec.begin(name) }

// digestHex adds a validated hex digest to the record.
func (t *table) digestHex(h []byte) {
	var d [maxDigestBytes]byte
	n, _ := hex.Decode(d[:], h)
	t.rec.digest(d[:n])
}

// end stores the record built, replacing an earlier one of the same name
// (the last wins, as in Python's json).
func (t *table) end() error {
	off, err := t.store(t.rec.b)
	if err != nil {
		return err
	}
	t.insert(slotOf(t.hash(recordName(t.rec.b)), off))
	return nil
}

// store copies rec into the arena and returns its offset.
func (t *table) store(rec []byte) (uint32, error) {
	last := len(t.chunks) - 1
	if last < 0 || len(t.chunks[last])+len(rec) > chunkSize {
		if len(t.chunks) >= maxChunks {
			return 0, errPolicyTooLarge
		}
		t.chunks = append(t.chunks, make([]byte, 0, max(chunkSize, len(rec))))
		last++
	}
	c := t.chunks[last]
	off := uint32(last)<<chunkBits | uint32(len(c))
	t.chunks[last] = append(c, rec...)
	return off, nil
}

func (t *table) record(off uint32) []byte {
	return t.chunks[off>>chunkBits][off&(chunkSize-1):]
}

func recordName(r []byte) []byte {
	return r[2 : 2+int(binary.LittleEndian.Uint16(r))]
}

// slotOf is the index slot of the record at off whose name hashes to h.
func slotOf(h uint64, off uint32) uint64 { return uint64(uint32(h))<<32 | uint64(off+1) }

// insert adds the slot of a stored record to the index, replacing the
// slot of an earlier record of the same name.
func (t *table) insert(s uint64) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	tag := uint32(s >> 32)
	mask := uint32(len(t.slots) - 1)
	var name []byte // read on a tag match only
	for i := tag & mask; ; i = (i + 1) & mask {
		o := t.slots[i]
		if o == 0 {
			t.slots[i] = s
			t.n++
			return
		}
		if uint32(o>>32) == tag {
			if name == nil {
				name = recordName(t.record(uint32(s) - 1))
			}
			if bytes.Equal(recordName(t.record(uint32(o)-1)), name) {
				t.slots[i] = s
				return
			}
		}
	}
}

func (t *table) grow() {
	size := max(len(t.slots)*2, 1024)
	old := t.slots
	t.slots = newSlots(size)
	mask := uint32(size - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		for i := uint32(s>>32) & mask; ; i = (i + 1) & mask {
			if t.slots[i] == 0 {
				t.slots[i] = s
				break
			}
		}
	}
}

// hash is the hash of a name: its low 32 bits are the tag a slot keeps,
// and their low bits the home slot.
func (t *table) hash(name []byte) uint64 { return maphash.Bytes(t.seed, name) }

// lookup returns the digests listed for name.
func (t *table) lookup(name []byte) (Digests, bool) {
	if t == nil || t.n == 0 {
		return Digests{}, false
	}
	return t.lookupHashed(name, t.hash(name))
}

// lookupHashed is lookup with the name's hash already computed.
func (t *table) lookupHashed(name []byte, h uint64) (Digests, bool) {
	if t == nil || t.n == 0 {
		return Digests{}, false
	}
	tag := uint32(h)
	mask := uint32(len(t.slots) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return Digests{}, false
		}
		if uint32(s>>32) == tag {
			r := t.record(uint32(s) - 1)
			if nl := int(binary.LittleEndian.Uint16(r)); nl == len(name) && string(r[2:2+nl]) == string(name) {
				return Digests{r[2+nl:]}, true
			}
		}
	}
}

// Len returns the number of names.
func (t *table) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// each calls f for every name and its digests, in no particular order.
func (t *table) each(f func(name []byte, d Digests)) {
	if t == nil {
		return
	}
	for _, s := range t.slots {
		if s != 0 {
			r := t.record(uint32(s) - 1)
			nl := int(binary.LittleEndian.Uint16(r))
			f(r[2:2+nl], Digests{r[2+nl:]})
		}
	}
}

// Digests is the list of digests a policy gives for one name.
type Digests struct {
	b []byte // u16 count, then u8 length + bytes per digest
}

// Len returns the number of digests.
func (d Digests) Len() int {
	if len(d.b) < 2 {
		return 0
	}
	return int(binary.LittleEndian.Uint16(d.b))
}

// Contains reports whether sum is one of the digests (same length, same
// bytes: Keylime compares the hex strings).
func (d Digests) Contains(sum []byte) bool {
	if len(d.b) < 2 {
		return false
	}
	n := int(binary.LittleEndian.Uint16(d.b))
	p := d.b[2:]
	for range n {
		l := int(p[0])
		if l == len(sum) && string(p[1:1+l]) == string(sum) {
			return true
		}
		p = p[1+l:]
	}
	return false
}

// Hex returns the digests as hex strings, in policy order.
func (d Digests) Hex() []string {
	n := d.Len()
	out := make([]string, 0, n)
	if n == 0 {
		return out
	}
	p := d.b[2:]
	for range n {
		l := int(p[0])
		out = append(out, hex.EncodeToString(p[1:1+l]))
		p = p[1+l:]
	}
	return out
}

// warm prepares the lookups of names: it computes their hashes into
// hashes (nil names are skipped) and then reads, in two passes, first the
// home slot of each and then the record each slot points to (its first and last
// bytes of name and digests, ahead of the digests). The reads of a pass do
// not depend on one another, so the processor overlaps their cache and TLB
// misses, where lookups one by one would wait for two misses each. It
// returns a byte of what it read, so that the reads are not optimised
// away.
func (t *table) warm(names [][]byte, hashes []uint64) byte {
	if t == nil || t.n == 0 {
		return 0
	}
	var sink byte
	mask := uint32(len(t.slots) - 1)
	for i, n := range names {
		if n != nil {
			hashes[i] = t.hash(n)
		}
	}
	for i, n := range names {
		if n != nil {
			sink ^= byte(t.slots[uint32(hashes[i])&mask])
		}
	}
	for i, n := range names {
		if n == nil {
			continue
		}
		tag := uint32(hashes[i])
		s := t.slots[tag&mask]
		if s == 0 || uint32(s>>32) != tag {
			continue
		}
		r := t.record(uint32(s) - 1)
		if end := 2 + len(n) + 2 + 1 + 32; end < len(r) {
			sink ^= r[0] ^ r[end]
		}
	}
	return sink
}

// builder fills a table on two goroutines: the caller's goroutine writes
// records into arena chunks (room, then add) and hashes their names, a
// second indexes every chunk handed to it. Records are never touched by both at
// once: a chunk changes hands whole, with the slots of its records.
type builder struct {
	t     *table
	chunk []byte
	slots []uint64 // the index slots of chunk's records, in order
	sent  int      // chunks handed over
	ch    chan filled
	free  chan []uint64 // slots the index is done with, for reuse
	done  chan struct{}
	sink  uint64 // what index read ahead, kept so that the reads stay
}

// filled is a chunk handed to the index, with the slots of its records.
type filled struct {
	chunk []byte
	slots []uint64
}

func newBuilder(t *table) *builder {
	b := &builder{t: t, ch: make(chan filled, 4), free: make(chan []uint64, 6), done: make(chan struct{})}
	go b.index()
	return b
}

// room returns the space to write a record of up to n bytes in: the rest
// of the current chunk, or a new chunk.
func (b *builder) room(n int) ([]byte, error) {
	if b.chunk != nil && len(b.chunk)+n > chunkSize {
		b.handOver()
	}
	if b.chunk == nil {
		if b.sent >= maxChunks {
			return nil, errPolicyTooLarge
		}
		b.chunk = make([]byte, 0, max(chunkSize, n))
		select {
		case s := <-b.free:
			b.slots = s[:0]
		default:
			b.slots = make([]uint64, 0, chunkSize/64)
		}
	}
	return b.chunk[len(b.chunk):cap(b.chunk)], nil
}

// add takes the first n bytes of the room last returned as a record.
func (b *builder) add(n int) {
	c := b.chunk[:len(b.chunk)+n]
	off := uint32(b.sent)<<chunkBits | uint32(len(b.chunk))
	b.slots = append(b.slots, slotOf(b.t.hash(recordName(c[len(b.chunk):])), off))
	b.chunk = c
}

func (b *builder) handOver() {
	b.ch <- filled{b.chunk, b.slots}
	b.sent++
	b.chunk, b.slots = nil, nil
}

// finish hands over the last chunk and waits for the index.
func (b *builder) finish() {
	if b.chunk != nil {
		b.handOver()
	}
	close(b.ch)
	<-b.done
}

// index adds the records of the chunks it is given to the index, in
// order, a group at a time: first a read of each home slot (reads that do
// not depend on one another, so that their cache misses overlap), then the
// inserts, which find the slots cached.
func (b *builder) index() {
	defer close(b.done)
	t := b.t
	const group = 64
	var sink uint64
	for f := range b.ch {
		t.chunks = append(t.chunks, f.chunk)
		for g := 0; g < len(f.slots); g += group {
			slots := f.slots[g:min(g+group, len(f.slots))]
			if (t.n+len(slots))*4 <= len(t.slots)*3 {
				mask := uint32(len(t.slots) - 1)
				for _, s := range slots {
					sink += t.slots[uint32(s>>32)&mask]
				}
			}
			for _, s := range slots {
				t.insert(s)
			}
		}
		select {
		case b.free <- f.slots:
		default:
		}
	}
	b.sink = sink
}

// sizeFor makes room in the index for about n names.
func (t *table) sizeFor(n int) {
	size := 1024
	for size*3 < n*4 {
		size *= 2
	}
	if size > len(t.slots) && t.n == 0 {
		t.slots = newSlots(size)
	}
}

// newSlots returns n empty slots, every page of them written once. Fresh
// memory that is read first is mapped to the kernel's shared zero page;
// the first write to it then copies the page and flushes the other cores'
// TLBs (an interrupt to each): the index reads a home slot before it
// writes it, and a million names paid ~4% of a verify's CPU for that.
func newSlots(n int) []uint64 {
	s := make([]uint64, n)
	for i := 0; i < n; i += 4096 / 8 {
		s[i] = 0
	}
	return s
}
