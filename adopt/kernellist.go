package adopt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/imago-ima/imago/ima"
)

// Files of the kernel's IMA directory in securityfs (ima-spec.md §2.1).
const (
	listFile  = "binary_runtime_measurements"
	countFile = "runtime_measurements_count"
)

// errLockHeld: lockList found the lock held by another process.
var errLockHeld = errors.New("adopt: lock held")

// maxCountFile bounds what is read of runtime_measurements_count.
const maxCountFile = 32

// kernelList is the kernel's measurement list in securityfs, opened once and
// read from the offset reached: the list is append-only, and a seq_file read
// at the position of the previous read continues where it stopped. The
// classic list carries SHA-1 template digests (20 bytes), the only list a
// TPM-bypass kernel has.
type kernelList struct {
	dir   string
	f     *os.File
	order binary.ByteOrder // detected from the first record, then fixed
}

// openKernelList opens <securityfs>/ima (or integrity/ima) and takes an
// exclusive flock on the list: every adopter takes it, so two never follow
// the same kernel's list (the lock goes with the process, also on kill -9).
func openKernelList(securityfs string) (*kernelList, error) {
	var dir string
	for _, p := range []string{"ima", "integrity/ima"} {
		d := filepath.Join(securityfs, p)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dir = d
			break
		}
	}
	if dir == "" {
		return nil, refuse(NoKernelList, "%s has no ima/ directory: no kernel IMA list to adopt (is securityfs mounted there?)", securityfs)
	}
	f, err := os.Open(filepath.Join(dir, listFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, refuse(NoKernelList, "%s has no %s", dir, listFile)
		}
		return nil, fmt.Errorf("adopt: %w", err)
	}
	if err := lockList(f); err != nil {
		f.Close()
		if errors.Is(err, errLockHeld) {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, f.Name())
		}
		return nil, fmt.Errorf("adopt: lock %s: %w", f.Name(), err)
	}
	return &kernelList{dir: dir, f: f}, nil
}

func (l *kernelList) close() error { return l.f.Close() }

// count reads runtime_measurements_count.
func (l *kernelList) count() (int, error) {
	p := filepath.Join(l.dir, countFile)
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("adopt: %w", err)
	}
	defer f.Close()
	buf := make([]byte, maxCountFile)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return 0, fmt.Errorf("adopt: read %s: %w", p, err)
	}
	s := string(bytes.TrimSuffix(buf[:n], []byte("\n")))
	c, err := strconv.ParseUint(s, 10, 31)
	if err != nil || n == maxCountFile {
		return 0, refuse(BadList, "%s holds %q, not a count", p, buf[:n])
	}
	return int(c), nil
}

// entries yields the complete records from byte offset off on, each with
// the offset after it, and stops at the end of what the kernel has listed so
// far. A record cut short at the end (a reader racing the writer) is not
// yielded; it is read whole next time. The entries own their bytes.
func (l *kernelList) entries(off int64) iter.Seq2[listed, error] {
	return func(yield func(listed, error) bool) {
		r := ima.NewReader(io.NewSectionReader(l.f, off, math.MaxInt64-off),
			ima.ReaderOptions{Order: l.order, DigestSize: 20, AllowUnknownTemplates: true})
		for {
			e, err := r.Next()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return
			}
			if err != nil {
				yield(listed{}, refuse(BadList, "%s at byte %d: %v", l.f.Name(), off+r.Offset(), err))
				return
			}
			if l.order == nil {
				l.order = r.ByteOrder()
			}
			if !yield(listed{e, off + r.Offset()}, nil) {
				return
			}
		}
	}
}

// listed is an entry with the byte offset of the record after it.
type listed struct {
	e    *ima.Entry
	next int64
}
