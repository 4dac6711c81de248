//go:build unix

// Command treefloor measures the ceiling of bench/verify.sh's
// runtime-policy create --from-dir figure on this machine: what the least
// a program must do to hash every file of a warm tree costs, and how much
// of that is reading the bytes alone. It lists the tree first (not timed),
// then runs passes over the list with one goroutine per GOMAXPROCS, each
// taking the next file (the big ones first, largest first) and doing only
// open (relative to its directory, kept open while the next file is in
// it too), read or map, (hash,) close: no walk, no stat, no output, no
// sorting.
//
// The passes, each run -runs times, one after the other (the best of the
// runs counts: other work on the machine only makes a pass slower):
//
//	read        every file read(2) into a buffer of treehash.ReadSize, no hashing
//	touch       small files read, big ones (>= 1 MiB) mapped and one byte of each page touched
//	hash-read   read as in "read", and hashed with SHA-256
//	hash-mmap   read or mapped as in "touch", and hashed with SHA-256
//	sha         the yardstick, measured alike: as many bytes hashed with SHA-256 from one
//	            in-cache buffer of treehash.ReadSize per goroutine (bench/sharate's loop)
//
// It prints one line: the cheaper hashing pass's (by CPU time) wall
// seconds, its CPU seconds (user and system, every thread), its way for
// big files ("read" or "mmap"), the CPU seconds of the read and touch
// passes, the bytes, the files, and the sha pass's wall and CPU seconds.
// With -v it also prints every pass's figures to stderr.
//
// usage: go run ./bench/treefloor [-runs N] [-v] ROOT
package main

import (
	"cmp"
	"crypto/sha256"
	"flag"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/internal/cputime"
	"github.com/imago-ima/imago/internal/treehash"
)

// bigSize: a file at least this big is mapped in the touch and hash-mmap
// passes (the size from which treehash maps a file).
const bigSize = 1 << 20

// file is one regular file of the tree.
type file struct {
	dir  string // its directory's path
	name string
	size int64
}

// pass is one way through the files: whether big files are mapped,
// whether the bytes are hashed, or whether the files are left alone and
// as many bytes hashed from a buffer (the yardstick).
type pass struct {
	name      string
	mmap      bool
	hash      bool
	yardstick bool
}

// result is the best of a pass's runs.
type result struct {
	wall, cpu time.Duration
}

func main() {
	runs := flag.Int("runs", 3, "runs of each pass (the best counts)")
	verbose := flag.Bool("v", false, "print every pass's figures to stderr")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: treefloor [-runs N] [-v] ROOT")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	files, total, err := list(flag.Arg(0))
	if err == nil && total == 0 {
		err = fmt.Errorf("%s: no bytes in regular files to read", flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "treefloor:", err)
		os.Exit(2)
	}
	const read, touch, hashRead, hashMmap, sha = 0, 1, 2, 3, 4 // passes[i]
	passes := []pass{{name: "read"}, {name: "touch", mmap: true}, {name: "hash-read", hash: true},
		{name: "hash-mmap", mmap: true, hash: true}, {name: "sha", yardstick: true}}
	best := make([]result, len(passes))
	if _, err := run(files, total, passes[read]); err != nil { // the tree into the page cache, if it was not
		fmt.Fprintln(os.Stderr, "treefloor:", err)
		os.Exit(2)
	}
	for range *runs {
		for i, p := range passes { // alternating, so that a busy moment spreads over every pass
			r, err := run(files, total, p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "treefloor:", err)
				os.Exit(2)
			}
			if best[i].wall == 0 || r.wall < best[i].wall {
				best[i].wall = r.wall
			}
			if best[i].cpu == 0 || r.cpu < best[i].cpu {
				best[i].cpu = r.cpu
			}
		}
	}
	procs := runtime.GOMAXPROCS(0)
	if *verbose {
		for i, p := range passes {
			fmt.Fprintf(os.Stderr, "%-9s  wall %.3f s  CPU %.3f s  %.0f MB/s per core  %.0f MB per CPU-second\n", p.name,
				best[i].wall.Seconds(), best[i].cpu.Seconds(), float64(total)/1e6/best[i].wall.Seconds()/float64(procs),
				float64(total)/1e6/best[i].cpu.Seconds())
		}
	}
	h, way := best[hashRead], "read"
	if best[hashMmap].cpu < h.cpu { // by CPU time, which the machine's other work changes less than wall time
		h, way = best[hashMmap], "mmap"
	}
	fmt.Printf("%.3f %.3f %s %.3f %.3f %d %d %.3f %.3f\n", h.wall.Seconds(), h.cpu.Seconds(), way,
		best[read].cpu.Seconds(), best[touch].cpu.Seconds(), total, len(files), best[sha].wall.Seconds(), best[sha].cpu.Seconds())
}

// list returns the tree's regular files, big ones first (largest first),
// and their total size.
func list(root string) ([]file, int64, error) {
	var files []file
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, file{filepath.Dir(p), d.Name(), info.Size()})
		total += info.Size()
		return nil
	})
	slices.SortStableFunc(files, func(a, b file) int {
		return cmp.Compare(max(b.size, bigSize-1), max(a.size, bigSize-1))
	})
	return files, total, err
}

// run makes one pass over the files (of total bytes) with one goroutine
// per GOMAXPROCS.
func run(files []file, total int64, p pass) (result, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	cpu := cputime.Start()
	start := time.Now()
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, treehash.ReadSize)
			if p.yardstick {
				hashBuffer(buf, total/int64(len(errs)))
				return
			}
			var h hash.Hash
			if p.hash {
				h = sha256.New()
			}
			var sum [sha256.Size]byte
			var d dir
			defer d.close()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				if h != nil {
					h.Reset()
				}
				dirfd, err := d.enter(files[i].dir)
				if err == nil {
					err = consume(dirfd, files[i], p.mmap && files[i].size >= bigSize, buf, h)
				}
				if err != nil {
					errs[w] = err
					return
				}
				if h != nil {
					h.Sum(sum[:0])
				}
			}
		}()
	}
	wg.Wait()
	r := result{time.Since(start), cpu.Elapsed()}
	for _, err := range errs {
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// hashBuffer hashes n bytes with SHA-256 from buf, again and again.
func hashBuffer(buf []byte, n int64) {
	for i := range buf {
		buf[i] = byte(i)
	}
	h := sha256.New()
	for ; n > 0; n -= int64(len(buf)) {
		h.Write(buf[:min(n, int64(len(buf)))])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
}

// dir is a worker's open directory.
type dir struct {
	path string
	fd   int // 0: none open
}

// enter opens path unless it is open already, and returns its descriptor.
func (d *dir) enter(path string) (int, error) {
	if d.fd > 0 && d.path == path {
		return d.fd, nil
	}
	d.close()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	d.path, d.fd = path, fd
	return fd, nil
}

func (d *dir) close() {
	if d.fd > 0 {
		unix.Close(d.fd)
	}
	d.fd = 0
}

// consume opens f in its directory (dirfd), reads or maps its bytes,
// writes them to h if h is not nil (else reads them only: a read into
// buf, or one byte of each mapped page), and closes it.
func consume(dirfd int, f file, mapped bool, buf []byte, h hash.Hash) error {
	path := filepath.Join(f.dir, f.name)
	fd, err := unix.Openat(dirfd, f.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if mapped {
		m, err := unix.Mmap(fd, 0, int(f.size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return &fs.PathError{Op: "mmap", Path: path, Err: err}
		}
		defer unix.Munmap(m)
		if h != nil {
			h.Write(m)
			return nil
		}
		var b byte
		for k := 0; k < len(m); k += 4096 {
			b |= m[k]
		}
		sink = b
		return nil
	}
	for off := int64(0); off < f.size; { // the size is known: no last read to find the end
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("ends at %d bytes, listed with %d", off, f.size)}
		}
		if h != nil {
			h.Write(buf[:n])
		}
		off += int64(n)
	}
	return nil
}

// sink keeps the touched bytes alive, so that the loads are not dropped.
var sink byte
