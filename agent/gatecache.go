//go:build linux

package agent

// fileVersion is one version of a file: the kernel's measure-once key
// (inode plus i_version or ctime, ima-spec.md §4.5). i_version is not
// visible to user space; size, mtime and ctime in nanoseconds stand in,
// and a close after writing forgets every version of the inode (the
// kernel's ima_check_last_writer).
type fileVersion struct {
	fileKey
	fileState
}

// versionInfo is what is known of one file version: the PCRs it was
// measured into and its appraisal result.
type versionInfo struct {
	measured  map[uint32]bool
	appraised bool
	appErr    error // nil: passed
}

// Bounds of the gate's inode table.
const (
	// maxTracked bounds the inodes the gate keeps: measure-once versions
	// and open counts.
	maxTracked = 1 << 16
	// maxVersions bounds the versions kept per inode (a file rewritten in
	// place without a close after writing that the gate sees).
	maxVersions = 4
)

// inodeEntry is what the gate knows of one inode.
type inodeEntry struct {
	inodeInfo
	versions []versionEntry // oldest first
}

type versionEntry struct {
	ver  fileVersion
	info *versionInfo
}

// inodeTable holds at most maxTracked inodes on two lists in order of use:
// busy ones (open now, with counts to keep) and idle ones (only a
// measure-once cache and flags). A new inode evicts the least recently
// used idle one, else the least recently used busy one: O(1), never a
// scan. Evicting a busy inode forgets its open counts (a ToMToU or
// open-writers violation on it may then be missed, as after a restart).
type inodeTable struct {
	busy, idle  lru[fileKey, *inodeEntry]
	evictedBusy uint64
}

func (t *inodeTable) len() int { return t.busy.len() + t.idle.len() }

// get returns k's entry, marking it used, or nil.
func (t *inodeTable) get(k fileKey) *inodeEntry {
	if e, ok := t.busy.get(k); ok {
		return *e
	}
	if e, ok := t.idle.get(k); ok {
		return *e
	}
	return nil
}

// entry returns k's entry, creating it (on the idle list) if need be.
func (t *inodeTable) entry(k fileKey) *inodeEntry {
	if e := t.get(k); e != nil {
		return e
	}
	if t.len() >= maxTracked {
		if t.idle.len() > 0 {
			t.idle.removeOldest()
		} else {
			t.busy.removeOldest()
			t.evictedBusy++
		}
	}
	e := &inodeEntry{}
	*t.idle.add(k) = e
	return e
}

// settle puts k's entry on the list its counts say, and drops it when
// nothing is left to know.
func (t *inodeTable) settle(k fileKey, e *inodeEntry) {
	busy := e.readers > 0 || e.writers > 0
	_, onBusy := t.busy.peek(k)
	_, onIdle := t.idle.peek(k)
	switch {
	case !onBusy && !onIdle:
		return // evicted meanwhile
	case !busy && len(e.versions) == 0 && !e.mustMeasure && !e.emittedWriters:
		t.busy.remove(k)
		t.idle.remove(k)
	case busy && onIdle:
		t.idle.remove(k)
		*t.busy.add(k) = e
	case !busy && onBusy:
		t.busy.remove(k)
		*t.idle.add(k) = e
	}
}

// version returns what is known of ver. Called with h.mu held.
func (h *gateHandler) version(ver fileVersion) *versionInfo {
	e := h.inodes.get(ver.fileKey)
	if e == nil {
		return nil
	}
	for _, v := range e.versions {
		if v.ver == ver {
			return v.info
		}
	}
	return nil
}

// addVersion returns ver's info, creating it. Called with h.mu held.
func (h *gateHandler) addVersion(ver fileVersion) *versionInfo {
	if vi := h.version(ver); vi != nil {
		return vi
	}
	e := h.inodes.entry(ver.fileKey)
	if len(e.versions) >= maxVersions {
		e.versions = append(e.versions[:0], e.versions[1:]...)
	}
	vi := &versionInfo{measured: map[uint32]bool{}}
	e.versions = append(e.versions, versionEntry{ver, vi})
	return vi
}
