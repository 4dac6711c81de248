//go:build !linux

package treehash

import (
	"context"
	"errors"
	"hash"
	"io"
	"sync/atomic"
)

// sysRoot: files are opened by path here.
type sysRoot struct {
	root   string
	fsType int64
}

func openRoot(root string) (sysRoot, error) {
	t, _ := fsType(root)
	return sysRoot{root: root, fsType: t}, nil
}

func (sysRoot) close() {}

// reader reads files for one worker.
type reader struct {
	root string
	buf  []byte
}

func (t *tree) newReader() *reader { return &reader{root: t.root, buf: make([]byte, ReadSize)} }

func (r *reader) close() {}

// hash writes the bytes of the file name in dir to h and returns how many
// there were; it must still be a regular file. (The size the walk saw is
// not used here.)
func (r *reader) hash(dir, name string, _ int64, h hash.Hash, stop *atomic.Bool, pr *Progress) (int64, error) {
	path := r.root + dir + "/" + name
	if dir == "" && r.root == "/" {
		path = "/" + name
	}
	f, err := openNoFollow(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, errors.New("no longer a regular file")
	}
	var n int64
	for !stop.Load() {
		m, err := f.Read(r.buf)
		h.Write(r.buf[:m])
		n += int64(m)
		if pr != nil {
			pr.Bytes.Add(int64(m))
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, context.Canceled
}
