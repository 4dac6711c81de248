package verify

import (
	"encoding/binary"
	"sync"

	"github.com/imago-ima/imago/pcr"
)

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
			// (every bank's digest has 8 bytes or more: the first 8
			// decide almost every comparison without a call to memequal)
			if binary.LittleEndian.Uint64(v) == binary.LittleEndian.Uint64(l.want[p][:]) && string(v) == string(l.want[p][:l.size]) {
				if l.from[p] < 0 {
					l.from[p] = k
				}
			} else if l.from[p] >= 0 && l.to[p] < 0 {
				l.to[p] = k
			}
		}
	}
}
