//go:build linux

package agent

import (
	"golang.org/x/sys/unix"
)

// fileVersion is one version of a file: the kernel's measure-once key
// (inode plus i_version or ctime, ima-spec.md §4.5). i_version is not
// visible to user space; size, mtime and ctime in nanoseconds stand in,
// and a close after writing forgets every version of the inode (the
// kernel's ima_check_last_writer).
type fileVersion struct {
	fileKey
	size         int64
	mtime, ctime unix.Timespec
}

// versionInfo is what is known of one file version: the PCRs it was
// measured into and its appraisal result.
type versionInfo struct {
	measured  map[uint32]bool
	appraised bool
	appErr    error // nil: passed
}

// version returns what is known of ver. Called with h.mu held.
func (h *gateHandler) version(ver fileVersion) *versionInfo {
	return h.versions[ver.fileKey][ver]
}
