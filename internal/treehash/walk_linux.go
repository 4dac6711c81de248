//go:build linux

package treehash

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"sync"

	"golang.org/x/sys/unix"
)

// walk lists the tree's files with one walker per worker, each taking a
// directory off a shared stack: the directory is opened relative to the
// root (not following a symlink put in its place), read with getdents64,
// and its files are looked at with fstatat relative to it, one system
// call a file.
func (t *tree) walk(ctx context.Context, workers int) (*listing, error) {
	w := &dirWalker{t: t, pending: []string{""}}
	w.cond.L = &w.mu
	parts := make([]listing, workers)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, &parts[i])
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return mergeListings(parts), nil
}

// dirWalker is the stack of directories still to read.
type dirWalker struct {
	t       *tree
	mu      sync.Mutex
	cond    sync.Cond
	pending []string // rel paths, "" for the root
	busy    int      // walkers reading a directory
	stopped bool
}

func (w *dirWalker) run(ctx context.Context, out *listing) {
	buf := make([]byte, 64<<10)
	var sub []string
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && w.busy > 0 && !w.stopped {
			w.cond.Wait()
		}
		if len(w.pending) == 0 || w.stopped {
			w.mu.Unlock()
			return
		}
		dir := w.pending[len(w.pending)-1]
		w.pending = w.pending[:len(w.pending)-1]
		w.busy++
		w.mu.Unlock()

		sub = w.t.readDir(dir, buf, sub[:0], out)

		w.mu.Lock()
		w.pending = append(w.pending, sub...)
		w.busy--
		if ctx.Err() != nil {
			w.stopped = true
		}
		w.mu.Unlock()
		w.cond.Broadcast()
	}
}

// readDir adds the regular files of dir to out and returns sub with the
// directories to descend into appended.
func (t *tree) readDir(dir string, buf []byte, sub []string, out *listing) []string {
	fd := t.sys.fd
	if dir != "" {
		var err error
		fd, err = openBeneath(t.sys.fd, dir[1:], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
		if err != nil {
			out.errs = append(out.errs, &Error{dir, &fs.PathError{Op: "open", Path: t.abs(dir), Err: err}})
			return sub
		}
		defer unix.Close(fd)
		var s unix.Statfs_t
		if unix.Fstatfs(fd, &s) == nil && int64(s.Type) != t.sys.fsType {
			return sub // a mount of another filesystem type (keylime: match_rootfs)
		}
	}
	lo := len(out.jobs)
	defer func() { out.addBatches(dir, lo) }()
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			out.errs = append(out.errs, &Error{slashed(dir), &fs.PathError{Op: "readdirent", Path: t.abs(dir), Err: err}})
			return sub
		}
		if n == 0 {
			return sub
		}
		for off := 0; off+19 <= n; {
			// struct linux_dirent64: d_ino, d_off, d_reclen at 16, d_type at 18, d_name at 19
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen < 19 || off+reclen > n {
				break
			}
			typ := buf[off+18]
			name := buf[off+19 : off+reclen]
			off += reclen
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if string(name) == "." || string(name) == ".." {
				continue
			}
			rel := dir + "/" + string(name)
			switch typ {
			case unix.DT_DIR:
				if !t.skip[rel] {
					sub = append(sub, rel)
				}
			case unix.DT_REG, unix.DT_UNKNOWN:
				var st unix.Stat_t
				if err := unix.Fstatat(fd, rel[len(dir)+1:], &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					out.errs = append(out.errs, &Error{rel, &fs.PathError{Op: "lstat", Path: t.abs(rel), Err: err}})
					continue
				}
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFDIR: // DT_UNKNOWN: the filesystem does not give types
					if !t.skip[rel] {
						sub = append(sub, rel)
					}
				case unix.S_IFREG:
					if st.Uid == 0 || t.allOwners {
						out.jobs = append(out.jobs, job{rel: rel, size: st.Size})
					}
				}
			}
		}
	}
}

func slashed(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}
