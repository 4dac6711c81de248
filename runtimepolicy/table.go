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

// digest adds a validated hex digest to the record.
func (r *record) digest(h []byte) {
	n := len(h) / 2
	r.b = append(r.b, byte(n))
	r.b = append(r.b, make([]byte, n)...)
	hex.Decode(r.b[len(r.b)-n:], h)
	c := 2 + int(binary.LittleEndian.Uint16(r.b)) // count's position
	binary.LittleEndian.PutUint16(r.b[c:], binary.LittleEndian.Uint16(r.b[c:])+1)
}

func (t *table) begin(name []byte) { t.rec.begin(name) }
func (t *table) digest(h []byte)   { t.rec.digest(h) }

// end stores the record built, replacing an earlier one of the same name
// (the last wins, as in Python's json).
func (t *table) end() error {
	off, err := t.store(t.rec.b)
	if err != nil {
		return err
	}
	name := recordName(t.rec.b)
	t.insert(name, off)
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

func (t *table) insert(name []byte, off uint32) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	tag := uint32(maphash.Bytes(t.seed, name))
	mask := uint32(len(t.slots) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			t.slots[i] = uint64(tag)<<32 | uint64(off+1)
			t.n++
			return
		}
		if uint32(s>>32) == tag && bytes.Equal(recordName(t.record(uint32(s)-1)), name) {
			t.slots[i] = uint64(tag)<<32 | uint64(off+1)
			return
		}
	}
}

func (t *table) grow() {
	size := max(len(t.slots)*2, 1024)
	old := t.slots
	t.slots = make([]uint64, size)
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

// lookup returns the digests listed for name.
func (t *table) lookup(name []byte) (Digests, bool) {
	if t == nil || t.n == 0 {
		return Digests{}, false
	}
	tag := uint32(maphash.Bytes(t.seed, name))
	mask := uint32(len(t.slots) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return Digests{}, false
		}
		if uint32(s>>32) == tag {
			r := t.record(uint32(s) - 1)
			if nl := int(binary.LittleEndian.Uint16(r)); nl == len(name) && bytes.Equal(r[2:2+nl], name) {
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

// warm reads the slot and the record name lookup(name) will read, and
// returns a byte of them so that the reads are not optimised away. A caller
// about to look up many names calls it for all of them first: the reads are
// independent, so the processor overlaps their cache misses.
func (t *table) warm(name []byte) byte {
	if t == nil || t.n == 0 {
		return 0
	}
	tag := uint32(maphash.Bytes(t.seed, name))
	s := t.slots[tag&uint32(len(t.slots)-1)]
	if s == 0 {
		return 0
	}
	return t.record(uint32(s) - 1)[0]
}

// builder fills a table on two goroutines: the caller's parses and builds
// records into arena chunks, a second indexes every chunk handed to it.
// Records are never touched by both at once: a chunk changes hands whole.
type builder struct {
	t     *table
	chunk []byte
	sent  int // chunks handed over
	rec   record
	ch    chan []byte
	done  chan struct{}
}

func newBuilder(t *table) *builder {
	b := &builder{t: t, ch: make(chan []byte, 4), done: make(chan struct{})}
	go b.index()
	return b
}

func (b *builder) begin(name []byte) { b.rec.begin(name) }
func (b *builder) digest(h []byte)   { b.rec.digest(h) }

func (b *builder) end() error {
	if b.chunk != nil && len(b.chunk)+len(b.rec.b) > chunkSize {
		b.ch <- b.chunk
		b.sent++
		b.chunk = nil
	}
	if b.chunk == nil {
		if b.sent >= maxChunks {
			return errPolicyTooLarge
		}
		b.chunk = make([]byte, 0, max(chunkSize, len(b.rec.b)))
	}
	b.chunk = append(b.chunk, b.rec.b...)
	return nil
}

// finish hands over the last chunk and waits for the index.
func (b *builder) finish() {
	if b.chunk != nil {
		b.ch <- b.chunk
		b.chunk = nil
	}
	close(b.ch)
	<-b.done
}

// index adds every record of the chunks it is given, in order.
func (b *builder) index() {
	defer close(b.done)
	t := b.t
	for c := range b.ch {
		idx := uint32(len(t.chunks))
		t.chunks = append(t.chunks, c)
		for off := 0; off < len(c); {
			nl := int(binary.LittleEndian.Uint16(c[off:]))
			p := off + 2 + nl
			count := int(binary.LittleEndian.Uint16(c[p:]))
			p += 2
			for range count {
				p += 1 + int(c[p])
			}
			t.insert(c[off+2:off+2+nl], idx<<chunkBits|uint32(off))
			off = p
		}
	}
}

// sizeFor makes room in the index for about n names.
func (t *table) sizeFor(n int) {
	size := 1024
	for size*3 < n*4 {
		size *= 2
	}
	if size > len(t.slots) && t.n == 0 {
		t.slots = make([]uint64, size)
	}
}
