//go:build linux

package treehash

import (
	"context"
	"errors"
	"hash"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// mapWindow is how much of a big file is mapped at a time.
const mapWindow = 32 << 20

// errShrank: a mapped file was cut short while it was hashed.
var errShrank = errors.New("file shrank while it was read")

// hashMapped hashes the first size bytes of the file through read-only
// mappings of mapWindow bytes: the hash reads the page cache with no copy
// into a buffer. It returns how many bytes it hashed: fewer than size
// when a mapping cannot be made (the caller reads the rest).
func hashMapped(fd int, size int64, h hash.Hash, stop *atomic.Bool, pr *Progress) (int64, error) {
	var off int64
	for off < size {
		if stop.Load() {
			return off, context.Canceled
		}
		n := min(size-off, mapWindow)
		m, err := unix.Mmap(fd, off, int(n), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return off, nil
		}
		unix.Madvise(m, unix.MADV_SEQUENTIAL)
		err = hashMapping(h, m)
		unix.Munmap(m)
		if err != nil {
			return off, err
		}
		off += n
		if pr != nil {
			pr.Bytes.Add(n)
		}
	}
	return off, nil
}

// hashMapping writes m to h. A page past the end of a file that shrank
// since it was mapped faults (SIGBUS): that becomes errShrank.
func hashMapping(h hash.Hash, m []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			if _, ok := e.(interface{ Addr() uintptr }); !ok {
				panic(e)
			}
			err = errShrank
		}
	}()
	h.Write(m)
	return nil
}
