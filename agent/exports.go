package agent

import (
	"bufio"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// Export file names, as securityfs names them (ima-spec.md §2.1).
const (
	exportBinary     = "binary_runtime_measurements"
	exportASCII      = "ascii_runtime_measurements"
	exportCount      = "runtime_measurements_count"
	exportViolations = "violations"
)

// rebuildInterval bounds how often exports that could not be rebuilt are
// tried again: a rebuild reads the whole list.
const rebuildInterval = time.Second

// exports keeps the securityfs-style files in the runtime directory:
// binary_ and ascii_runtime_measurements_<alg> per bank (the unsuffixed
// names are symlinks to the _sha1 files), runtime_measurements_count and
// violations.
//
// They are built from the durable list, atomically (each file written
// under a temporary name and renamed over the old one), at start and
// whenever they may not match the list; after that each entry is appended
// to every list file and the counters rewritten. A failed append is undone
// (the files cut back, the counters rewritten); if even that fails the
// exports are stale, and are rebuilt before the next entry is listed.
type exports struct {
	dir   string
	order byteOrder
	banks []BankInfo
	files []*os.File // binary then ascii, per bank
	sizes []int64
	count *os.File
	n     int
	viol  int   // violations listed (the securityfs violations counter)
	stale error // set when the files may not match the list
	tried time.Time
	buf   []byte
}

// exportMark is the exports' state before an append, for rollback.
type exportMark struct {
	sizes   []int64
	n, viol int
}

// exportName is the per-bank suffix: the kernel hash name, or tpm_alg_<hex>
// for a bank the kernel cannot map.
func exportName(b pcr.Bank) string {
	if a, ok := ima.HashAlgForBank(b); ok {
		return a.String()
	}
	return b.String()
}

// newExports builds the export files from entries (nil: none) and opens
// them for appending.
func newExports(dir string, banks []BankInfo, order byteOrder, entries iter.Seq2[*ima.Entry, error]) (*exports, error) {
	x := &exports{dir: dir, order: order, banks: banks}
	if err := x.rebuild(entries); err != nil {
		x.close()
		return nil, err
	}
	return x, nil
}

func (x *exports) fileNames() []string {
	var names []string
	for _, b := range x.banks {
		names = append(names, exportBinary+"_"+exportName(b.Bank), exportASCII+"_"+exportName(b.Bank))
	}
	return names
}

// rebuild writes every export file from entries, each under a temporary
// name renamed over the old file, and reopens them. The lists come first
// and the count last, so that a reader never finds a count above the
// entries listed.
func (x *exports) rebuild(entries iter.Seq2[*ima.Entry, error]) error {
	x.tried = time.Now()
	x.close()
	names := x.fileNames()
	tmps := make([]*os.File, len(names))
	ws := make([]*bufio.Writer, len(names))
	sizes := make([]int64, len(names))
	cleanup := func() {
		for _, f := range tmps {
			if f != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}
	}
	for i, name := range names {
		f, err := os.CreateTemp(x.dir, "."+name+".tmp*")
		if err != nil {
			cleanup()
			return x.setStale(err)
		}
		tmps[i], ws[i] = f, bufio.NewWriterSize(f, 64<<10)
	}
	n, viol := 0, 0
	if entries != nil {
		for e, err := range entries {
			if err != nil {
				cleanup()
				return x.setStale(err)
			}
			for i := range x.banks {
				bin, asc, err := x.records(e, nil, i)
				if err != nil {
					cleanup()
					return x.setStale(err)
				}
				ws[2*i].Write(bin)
				ws[2*i+1].Write(asc)
				sizes[2*i] += int64(len(bin))
				sizes[2*i+1] += int64(len(asc))
			}
			n++
			if e.IsViolation() {
				viol++
			}
		}
	}
	for i, w := range ws {
		if err := w.Flush(); err != nil {
			cleanup()
			return x.setStale(err)
		}
		if err := tmps[i].Chmod(0o644); err != nil {
			cleanup()
			return x.setStale(err)
		}
	}
	for i, name := range names {
		if err := os.Rename(tmps[i].Name(), filepath.Join(x.dir, name)); err != nil {
			cleanup()
			return x.setStale(err)
		}
	}
	x.files, x.sizes = tmps, sizes
	for _, name := range []string{exportBinary, exportASCII} {
		if err := replaceSymlink(name+"_sha1", filepath.Join(x.dir, name)); err != nil {
			return x.setStale(err)
		}
	}
	x.n, x.viol = n, viol
	if err := writeAtomic(filepath.Join(x.dir, exportViolations), counter(viol)); err != nil {
		return x.setStale(err)
	}
	if err := writeAtomic(filepath.Join(x.dir, exportCount), counter(n)); err != nil {
		return x.setStale(err)
	}
	f, err := os.OpenFile(filepath.Join(x.dir, exportCount), os.O_WRONLY, 0)
	if err != nil {
		return x.setStale(err)
	}
	x.count = f
	x.stale = nil
	return nil
}

func (x *exports) setStale(err error) error {
	x.stale = fmt.Errorf("agent: exports: %w", err)
	return x.stale
}

// records returns e's binary record and ascii line for bank i, in x.buf.
// digests holds the per-bank template digests (nil: computed here). A
// violation entry shows zeros of the bank's width (ima-spec.md §5.2).
func (x *exports) records(e *ima.Entry, digests map[pcr.Bank][]byte, i int) (bin, asc []byte, err error) {
	b := x.banks[i]
	d, ok := digests[b.Bank]
	if e.IsViolation() {
		d, ok = make([]byte, b.Size), true
	}
	if !ok {
		d = bankDigests(e, e.Digest, []BankInfo{b})[b.Bank]
	}
	if x.buf, err = appendBinary(x.buf[:0], e, d, x.order); err != nil {
		return nil, nil, err
	}
	n := len(x.buf)
	x.buf = appendASCII(x.buf, e, d)
	return x.buf[:n], x.buf[n:], nil
}

// mark returns the state to roll back to.
func (x *exports) mark() exportMark {
	return exportMark{sizes: append([]int64(nil), x.sizes...), n: x.n, viol: x.viol}
}

// append adds e to every list file and rewrites the counters. On error
// some files may hold part of it: the caller rolls back to a mark.
func (x *exports) append(e *ima.Entry, digests map[pcr.Bank][]byte) error {
	if x.stale != nil {
		return x.stale
	}
	for i := range x.banks {
		bin, asc, err := x.records(e, digests, i)
		if err != nil {
			return err
		}
		for j, rec := range [][]byte{bin, asc} {
			k := 2*i + j
			n, err := x.files[k].WriteAt(rec, x.sizes[k])
			x.sizes[k] += int64(n)
			if err != nil {
				return fmt.Errorf("agent: exports: writing %s: %w", x.fileNames()[k], errors.Unwrap(err))
			}
		}
	}
	x.n++
	if e.IsViolation() {
		x.viol++
		if err := writeAtomic(filepath.Join(x.dir, exportViolations), counter(x.viol)); err != nil {
			return fmt.Errorf("agent: exports: %w", err)
		}
	}
	return x.writeCount()
}

// rollback undoes appends since m; if that fails the exports are stale.
func (x *exports) rollback(m exportMark) {
	if x.stale != nil {
		return
	}
	var errs []error
	for k, f := range x.files {
		// Every file, whatever its size says: a write that fails part way
		// may have written bytes it does not count (os.File.WriteAt
		// reports 0 when a later pwrite fails).
		if err := f.Truncate(m.sizes[k]); err != nil {
			errs = append(errs, err)
		}
		x.sizes[k] = m.sizes[k]
	}
	if x.viol != m.viol {
		x.viol = m.viol
		errs = append(errs, writeAtomic(filepath.Join(x.dir, exportViolations), counter(x.viol)))
	}
	if x.n != m.n {
		x.n = m.n
		errs = append(errs, x.writeCount())
	}
	if err := errors.Join(errs...); err != nil {
		x.setStale(fmt.Errorf("undoing a failed entry: %w", err))
	}
}

// writeCount rewrites runtime_measurements_count in place: a few bytes in
// a page the file already has, which needs no space.
func (x *exports) writeCount() error {
	s := counter(x.n)
	if _, err := x.count.WriteAt(s, 0); err != nil {
		return fmt.Errorf("agent: exports: %w", err)
	}
	if err := x.count.Truncate(int64(len(s))); err != nil {
		return fmt.Errorf("agent: exports: %w", err)
	}
	return nil
}

func counter(n int) []byte { return append(strconv.AppendInt(nil, int64(n), 10), '\n') }

// writeAtomic replaces path with data through a temporary file and a
// rename (no fsync: the exports live in a runtime directory and are
// rebuilt from the list at every start).
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Chmod(0o644)
	if err := errors.Join(werr, cerr, f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// replaceSymlink points link at target, atomically.
func replaceSymlink(target, link string) error {
	if t, err := os.Readlink(link); err == nil && t == target {
		return nil
	}
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (x *exports) close() error {
	var errs []error
	for _, f := range append([]*os.File{x.count}, x.files...) {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	x.files, x.count = nil, nil
	return errors.Join(errs...)
}

// freshExports rebuilds stale exports from the durable list (at most once
// per rebuildInterval) and returns why they are still stale, if they are.
// Called with a.mu held.
func (a *Agent) freshExports() error {
	x := a.exp
	if x.stale == nil {
		return nil
	}
	if time.Since(x.tried) >= rebuildInterval {
		if err := x.rebuild(a.listEntries()); err == nil {
			a.log.Info("the exports were rebuilt from the list", "entries", x.n)
		} else {
			a.log.Error("rebuilding the exports failed", "err", err)
		}
	}
	a.update(func() { a.expErr = x.stale })
	return x.stale
}

// listEntries reads the durable list back.
func (a *Agent) listEntries() iter.Seq2[*ima.Entry, error] {
	return ima.NewReader(a.list.ReaderAt(), ima.ReaderOptions{Order: a.order, DigestSize: 20, AllowUnknownTemplates: true}).All()
}
