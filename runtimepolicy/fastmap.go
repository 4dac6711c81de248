package runtimepolicy

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/imago-ima/imago/internal/hexdec"
)

// The fast path of the digest maps. Policies are written in one form,
// `"name": ["hex", ...]` with names free of escapes, and a policy of a
// million paths is little else: these members are read straight from the
// lexer's buffer into the records of the sink, a word at a time where
// bytes are searched or decoded. Anything else is left to the token reader
// of decodeMap, which also reports every error.

// fastDigests bounds the digests of a member the fast path reads.
const fastDigests = 8

// fastRoom is the most a record read by the fast path takes.
const fastRoom = 2 + MaxNameLen + 2 + fastDigests*(1+maxDigestBytes)

// fastMembers reads the members of a digest map that are in the common
// form and whole in the lexer's buffer, each with the ',' or '}' after it.
// It stops before anything else, having consumed nothing of it. It returns
// whether it read the map's closing '}' and how many members it read.
func (l *lexer) fastMembers(s sink, k mapKind) (closed bool, n int) {
	w, _ := l.br.Peek(l.br.Buffered())
	done, lines := 0, 0 // what is read: whole members and their separators
	for {
		pre := 0 // newlines before the member
		p := skipSpace(w, done, &pre)
		if p >= len(w) || w[p] != '"' {
			break
		}
		room, err := s.room(k, fastRoom)
		if err != nil {
			break // the token reader reports it
		}
		size, next, nl, ok := fastMember(room, w, p)
		if !ok {
			break
		}
		// The member is whole and its separator follows it: take both.
		s.add(k, size)
		n++
		done, lines = next, lines+pre+nl
		if w[next-1] == '}' {
			closed = true
			break
		}
	}
	l.line += lines
	l.discard(done)
	return closed, n
}

// fastMember reads the member at w[p:] (at its opening '"') into a record
// at the start of room (which holds fastRoom bytes), and the white space
// and separator (',' or '}') after it. It returns the record's size, the
// index after the separator and the newlines it passed; ok is false if
// the member is not in the common form or not whole in w.
func fastMember(room, w []byte, p int) (size, next, lines int, ok bool) {
	q := stringEnd(w, p+1)
	if q >= len(w) || w[q] != '"' || q-p-1 > MaxNameLen {
		return 0, 0, 0, false
	}
	name := w[p+1 : q]
	binary.LittleEndian.PutUint16(room, uint16(len(name)))
	r := 2 + copy(room[2:], name)
	count := r
	r += 2
	p = skipSpace(w, q+1, &lines)
	if p >= len(w) || w[p] != ':' {
		return 0, 0, 0, false
	}
	p = skipSpace(w, p+1, &lines)
	if p >= len(w) || w[p] != '[' {
		return 0, 0, 0, false
	}
	p = skipSpace(w, p+1, &lines)
	n := 0
	if p < len(w) && w[p] == ']' {
		p++
	} else {
		for {
			if n == fastDigests || p >= len(w) || w[p] != '"' {
				return 0, 0, 0, false
			}
			// Write the room first: Lower32 reads it (a nil check) before
			// it writes it, and fresh memory read first is the kernel's
			// zero page, which the write then copies, flushing the other
			// cores' TLBs.
			room[r+1] = 0
			d, end, ok := fastDigest(room[r+1:r+1+maxDigestBytes], w, p+1)
			if !ok {
				return 0, 0, 0, false
			}
			room[r] = byte(d)
			r += 1 + d
			n++
			p = skipSpace(w, end+1, &lines)
			if p >= len(w) {
				return 0, 0, 0, false
			}
			if w[p] == ']' {
				p++
				break
			}
			if w[p] != ',' {
				return 0, 0, 0, false
			}
			p = skipSpace(w, p+1, &lines)
		}
	}
	binary.LittleEndian.PutUint16(room[count:], uint16(n))
	p = skipSpace(w, p, &lines)
	if p >= len(w) || w[p] != ',' && w[p] != '}' {
		return 0, 0, 0, false
	}
	return r, p + 1, lines, true
}

// fastDigest decodes the digest string that starts at w[h] (after its
// '"') into dst, as decodeDigest does, and returns its size in bytes and
// the index of its closing '"'. It fails on an escape, as on a digest that
// is not valid or not whole in w.
func fastDigest(dst, w []byte, h int) (size, end int, ok bool) {
	// The usual digest, sha256: if its 64 digits decode, no '"' is among
	// them.
	if e := h + 64; e < len(w) && w[e] == '"' && hexdec.Lower32((*[32]byte)(dst), (*[64]byte)(w[h:e])) {
		return 32, e, true
	}
	q := bytes.IndexByte(w[h:min(len(w), h+161)], '"')
	if q < 0 || bytes.IndexByte(w[h:h+q], '\\') >= 0 {
		return 0, 0, false
	}
	size, err := decodeDigest(dst, w[h:h+q])
	return size, h + q, err == nil
}

// skipSpace returns the index of the first byte at or after p in w that
// is not JSON white space, counting the newlines it passes into lines.
func skipSpace(w []byte, p int, lines *int) int {
	for ; p < len(w); p++ {
		switch w[p] {
		case ' ', '\t', '\r':
		case '\n':
			*lines++
		default:
			return p
		}
	}
	return p
}

// stringEnd returns the index of the first byte at or after p in w that
// ends a string's plain run, '"', '\\' or a control character, or len(w).
// Eight bytes are tested at once, as in the zero-byte test of Hacker's
// Delight 6-1: x-0x20 in each byte sets the high bit of a byte below 0x20,
// (x^c)-1 that of a byte equal to c; a borrow can flag bytes after the
// first such byte, never one before it, so the lowest flag is exact.
func stringEnd(w []byte, p int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; p+8 <= len(w); p += 8 {
		x := binary.LittleEndian.Uint64(w[p:])
		q := x ^ ones*'"'
		b := x ^ ones*'\\'
		m := ((x - ones*0x20) | (q - ones) | (b - ones)) &^ x & highs
		// A byte above 0x7f is flagged by none: masked by ^x (q and b
		// keep the high bit of x).
		if m != 0 {
			return p + bits.TrailingZeros64(m)/8
		}
	}
	for ; p < len(w); p++ {
		if c := w[p]; c == '"' || c == '\\' || c < 0x20 {
			return p
		}
	}
	return len(w)
}
