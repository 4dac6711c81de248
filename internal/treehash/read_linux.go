//go:build linux

package treehash

import (
	"context"
	"errors"
	"hash"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// errNotRegular: the walk saw a regular file, the open found something else.
var errNotRegular = errors.New("no longer a regular file")

// reader opens and reads files for one worker, keeping the directory of
// the batch it works on open.
type reader struct {
	root    int
	dir     string
	dirfd   int // -1 when no directory is open, root for ""
	buf     []byte
	noatime int // O_NOATIME while allowed: hashing leaves the files' access times as they were
}

func (t *tree) newReader() *reader {
	return &reader{root: t.sys.fd, dirfd: -1, buf: make([]byte, ReadSize), noatime: unix.O_NOATIME}
}

func (r *reader) close() {
	if r.dirfd >= 0 && r.dirfd != r.root {
		unix.Close(r.dirfd)
	}
	r.dirfd = -1
}

// hash writes the bytes of the file name in dir to h and returns how many
// there were (dir "": name is a path under the root). The file is opened
// without following a symlink put in its place or in its directories'
// since the walk, and must still be a regular file.
//
// A file the walk saw smaller than the read buffer (walked bytes) is read
// with one pread, and when that read gives exactly walked bytes it is
// hashed as it is, without an fstat: the walk's fstatat found a regular
// file of that size, and a short read at that size is its end, as it is at
// the size fstat gives. Anything else (another size, a read error such as
// ESPIPE from a FIFO or EISDIR from a directory put in its place) is
// checked with fstat and read again from the start.
func (r *reader) hash(dir, name string, walked int64, h hash.Hash, stop *atomic.Bool, pr *Progress) (int64, error) {
	dirfd, err := r.enter(dir)
	if err != nil {
		return 0, err
	}
	open := openat // one name in the open directory
	if dir == "" {
		open = openBeneath // a path under the root (a big file)
	}
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK
	fd, err := open(dirfd, name, flags|r.noatime)
	if err == unix.EPERM && r.noatime != 0 {
		r.noatime = 0 // not the owner and without CAP_FOWNER: from now on, atime as it comes
		fd, err = open(dirfd, name, flags)
	}
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if walked < int64(len(r.buf)) {
		n, err := unix.Pread(fd, r.buf, 0)
		if err == nil && int64(n) == walked {
			h.Write(r.buf[:n])
			if pr != nil {
				pr.Bytes.Add(int64(n))
			}
			return int64(n), nil
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, errNotRegular
	}
	var n int64
	if st.Size > ReadSize {
		if n, err = hashMapped(fd, st.Size, h, stop, pr); err != nil {
			return 0, err
		}
	}
	m, err := r.readFrom(fd, n, st.Size, h, stop, pr)
	return n + m, err
}

// enter opens dir (relative to the root) unless it is open already.
func (r *reader) enter(dir string) (int, error) {
	if r.dirfd >= 0 && r.dir == dir {
		return r.dirfd, nil
	}
	r.close()
	if dir == "" {
		r.dir, r.dirfd = "", r.root
		return r.root, nil
	}
	fd, err := openBeneath(r.root, dir[1:], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return 0, err
	}
	r.dir, r.dirfd = dir, fd
	return fd, nil
}

// readFrom hashes the file from off to its end with pread(2); a read that
// stops short of the buffer at the size fstat gave is the end, without a
// last read to see nothing more.
func (r *reader) readFrom(fd int, off, size int64, h hash.Hash, stop *atomic.Bool, pr *Progress) (int64, error) {
	var total int64
	for !stop.Load() {
		n, err := unix.Pread(fd, r.buf, off+total)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		h.Write(r.buf[:n])
		total += int64(n)
		if pr != nil {
			pr.Bytes.Add(int64(n))
		}
		if n < len(r.buf) && off+total == size {
			return total, nil
		}
	}
	return total, context.Canceled
}
