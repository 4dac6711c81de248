package agent

import "sync"

// fileKey names an inode; fileState is its change state. The kernel keys
// measure-once on the inode and detects change through i_version or ctime
// (ima-spec.md §4.5); i_version is not exposed to user space (statx's
// STATX_CHANGE_COOKIE is kernel-internal), so size, mtime and ctime in
// nanoseconds stand in for it.
type fileKey struct{ dev, ino uint64 }

type fileState struct {
	size         int64
	mtime, ctime timespec
}

type timespec struct{ sec, nsec int64 }

// fileInfo is what measuring needs of an open file's fstat (statFile).
type fileInfo struct {
	key      fileKey
	state    fileState
	uid, gid uint32
	mode     uint16
	regular  bool
	kind     string // the file type, for messages
}

// maxSeen bounds the files `imago measure` remembers as measured.
const maxSeen = 1 << 16

// seenCache is measure-once for `imago measure`: the version of each file
// last measured, at most maxSeen files, the least recently used forgotten
// first (a forgotten file is hashed again and found a duplicate).
type seenCache struct {
	mu sync.Mutex
	m  lru[fileKey, fileState]
}

func (c *seenCache) unchanged(k fileKey, st fileState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m.get(k)
	return ok && *v == st
}

func (c *seenCache) put(k fileKey, st fileState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m.get(k); ok {
		*v = st
		return
	}
	if c.m.len() >= maxSeen {
		c.m.removeOldest()
	}
	*c.m.add(k) = st
}

// lru is a map whose entries are kept in order of use, so that the least
// recently used one is found and removed in O(1). The zero value is empty.
type lru[K comparable, V any] struct {
	m    map[K]*lruNode[K, V]
	root lruNode[K, V] // sentinel: root.next is the most recent
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruNode[K, V]
}

func (l *lru[K, V]) init() {
	if l.m == nil {
		l.m = make(map[K]*lruNode[K, V])
		l.root.next, l.root.prev = &l.root, &l.root
	}
}

func (l *lru[K, V]) len() int { return len(l.m) }

// get returns k's value and marks it used.
func (l *lru[K, V]) get(k K) (*V, bool) {
	l.init()
	n, ok := l.m[k]
	if !ok {
		return nil, false
	}
	l.unlink(n)
	l.pushFront(n)
	return &n.val, true
}

// peek returns k's value without marking it used.
func (l *lru[K, V]) peek(k K) (*V, bool) {
	l.init()
	n, ok := l.m[k]
	if !ok {
		return nil, false
	}
	return &n.val, true
}

// add inserts k (which must not be there) as the most recent, with the
// zero value, and returns its value.
func (l *lru[K, V]) add(k K) *V {
	l.init()
	n := &lruNode[K, V]{key: k}
	l.m[k] = n
	l.pushFront(n)
	return &n.val
}

// remove deletes k.
func (l *lru[K, V]) remove(k K) {
	l.init()
	if n, ok := l.m[k]; ok {
		l.unlink(n)
		delete(l.m, k)
	}
}

// oldest returns the least recently used key.
func (l *lru[K, V]) oldest() (K, *V, bool) {
	l.init()
	if len(l.m) == 0 {
		var zero K
		return zero, nil, false
	}
	n := l.root.prev
	return n.key, &n.val, true
}

// removeOldest deletes the least recently used entry.
func (l *lru[K, V]) removeOldest() {
	if k, _, ok := l.oldest(); ok {
		l.remove(k)
	}
}

func (l *lru[K, V]) unlink(n *lruNode[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (l *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev, n.next = &l.root, l.root.next
	l.root.next.prev = n
	l.root.next = n
}
