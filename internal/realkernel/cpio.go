package realkernel

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Mode bits of a cpio entry (the stat(2) S_IF* values).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
)

// mtime is every entry's modification time: fixed, so that the same
// inputs give the same archive byte for byte.
const mtime = 1700000000

// entry is one member of the archive.
type entry struct {
	name string // without a leading slash
	mode uint32 // type and permission bits
	data []byte // file content, or a symlink's target
}

// writeNewc writes entries as a cpio archive in the "newc" format (SVR4
// without CRC, the format the kernel unpacks an initramfs from:
// Documentation/driver-api/early-userspace/buffer-format.rst): sorted by
// name (a directory before what it holds), inode numbers counted from 1,
// owner root, one fixed mtime, then the TRAILER!!! entry.
func writeNewc(w io.Writer, entries []entry) error {
	es := slices.Clone(entries)
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	bw := bufio.NewWriter(w)
	var off int64
	put := func(ino int, e entry) error {
		nlink := 1
		if e.mode&0o170000 == modeDir {
			nlink = 2
		}
		name := e.name + "\x00"
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.mode, 0, 0, nlink, mtime, len(e.data), 0, 0, 0, 0, len(name), 0)
		n, _ := io.WriteString(bw, hdr+name)
		off += int64(n)
		off += pad(bw, off)
		m, err := bw.Write(e.data)
		off += int64(m)
		off += pad(bw, off)
		return err
	}
	for i, e := range es {
		if i > 0 && es[i-1].name == e.name {
			return fmt.Errorf("realkernel: cpio: %s twice", e.name)
		}
		if err := put(i+1, e); err != nil {
			return err
		}
	}
	if err := put(0, entry{name: "TRAILER!!!"}); err != nil {
		return err
	}
	return bw.Flush()
}

// pad writes zeros up to the next multiple of 4 and returns how many.
func pad(w io.Writer, off int64) int64 {
	n := (4 - off%4) % 4
	w.Write(make([]byte, n))
	return n
}
