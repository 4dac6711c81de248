//go:build linux

package agent

import (
	"testing"

	"github.com/imago-ima/imago/gate"
)

// addOpen records a read open of a new inode, as violations does for a
// FILE_CHECK event: the inode is busy (open) afterwards.
func addOpen(h *gateHandler, p *prepared, ev *gate.Event, ino uint64) {
	p.ver.fileKey = fileKey{1, ino}
	h.violations(ev, p, 0, false)
}

// TestGateInodeTableBounded: the gate's inode table never holds more than
// maxTracked inodes, even when every one is open (the old table dropped
// only idle inodes, scanning all of them for each new one, and grew without
// bound when none was idle); idle inodes go first, and a busy one is
// evicted only when nothing else is left.
func TestGateInodeTableBounded(t *testing.T) {
	h := &gateHandler{}
	p, ev := &prepared{}, &gate.Event{}
	// Ten idle inodes first (a measured version, not open), then more
	// open files than the table holds.
	h.mu.Lock()
	for ino := range uint64(10) {
		h.addVersion(fileVersion{fileKey: fileKey{2, ino}})
	}
	h.mu.Unlock()
	for ino := range uint64(maxTracked + 1000) {
		addOpen(h, p, ev, ino)
	}
	if n := h.inodes.len(); n != maxTracked {
		t.Fatalf("%d inodes tracked, want %d", n, maxTracked)
	}
	// 1010 evictions: the 10 idle inodes first, then the 1000 least
	// recently used open ones.
	if h.inodes.evictedBusy != 1000 {
		t.Errorf("%d busy inodes evicted, want 1000", h.inodes.evictedBusy)
	}
	for ino := range uint64(10) {
		if h.inodes.get(fileKey{2, ino}) != nil {
			t.Fatalf("idle inode %d kept while open ones were evicted", ino)
		}
	}
	if h.inodes.get(fileKey{1, 999}) != nil || h.inodes.get(fileKey{1, 1000}) == nil {
		t.Error("not the least recently used inodes evicted")
	}
}

// BenchmarkGateNewInode is the reading thread's cost of a new inode's open
// when the table is full of open files: before the LRU table, every new
// inode scanned the whole table (about 5 ms per inode at 65,536 on the
// test machine) and the table kept growing.
func BenchmarkGateNewInode(b *testing.B) {
	h := &gateHandler{}
	p, ev := &prepared{}, &gate.Event{}
	var ino uint64
	for range maxTracked {
		ino++
		addOpen(h, p, ev, ino)
	}
	b.ReportAllocs()
	for b.Loop() {
		ino++
		addOpen(h, p, ev, ino)
	}
	b.ReportMetric(float64(h.inodes.len()), "tracked")
}
