package treehash

import (
	"cmp"
	"context"
	"hash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imago-ima/imago/ima"
)

// bigSize: a file at least this big is hashed on its own, largest first;
// smaller ones go in their directory's batches, behind the big ones.
const bigSize = 1 << 20

// batchFiles caps a batch, so that the last batches are short and every
// worker finishes at about the same time.
const batchFiles = 64

// job is one file to hash.
type job struct {
	rel  string // path in the target, with a leading '/'
	size int64  // as the walk saw it
}

// batch is a run of jobs[lo:hi] in one directory (rel, "" for the root).
type batch struct {
	dir    string
	lo, hi int
}

// listing is what a walk found.
type listing struct {
	jobs    []job
	batches []batch
	errs    []error
}

// addBatches appends a directory's files, jobs[lo:] of l, as batches.
func (l *listing) addBatches(dir string, lo int) {
	for lo < len(l.jobs) {
		hi := min(lo+batchFiles, len(l.jobs))
		l.batches = append(l.batches, batch{dir, lo, hi})
		lo = hi
	}
}

// mergeListings joins the workers' listings into one.
func mergeListings(parts []listing) *listing {
	var out listing
	for _, p := range parts {
		off := len(out.jobs)
		out.jobs = append(out.jobs, p.jobs...)
		for _, b := range p.batches {
			out.batches = append(out.batches, batch{b.dir, b.lo + off, b.hi + off})
		}
		out.errs = append(out.errs, p.errs...)
	}
	return &out
}

// hashAll hashes the listing's files with workers goroutines: first one
// unit that orders the output by path (while the others start hashing),
// then the big files, largest first, then the batches. It returns the
// files in path order and every error sorted by path.
func (t *tree) hashAll(ctx context.Context, l *listing, alg ima.HashAlg, workers int, pr *Progress) ([]File, []error) {
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	var big []int
	for i, j := range l.jobs {
		if j.size >= bigSize {
			big = append(big, i)
		}
	}
	slices.SortFunc(big, func(a, b int) int {
		return cmp.Or(cmp.Compare(l.jobs[b].size, l.jobs[a].size), strings.Compare(l.jobs[a].rel, l.jobs[b].rel))
	})
	size := alg.Size()
	sums := make([]byte, len(l.jobs)*size)
	sizes := make([]int64, len(l.jobs))
	fileErrs := make([]error, len(l.jobs))
	paths := make([]string, len(l.jobs))
	order := make([]int, len(l.jobs))
	sortOutput := func() {
		for i, j := range l.jobs {
			paths[i] = strings.ReplaceAll(j.rel, " ", "_")
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(paths[a], paths[b]) })
	}
	units := 1 + len(big) + len(l.batches)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{h: alg.New(), r: t.newReader(), stop: &stop, pr: pr}
			defer w.r.close()
			for !stop.Load() {
				u := int(next.Add(1) - 1)
				switch {
				case u >= units:
					return
				case u == 0:
					sortOutput()
				case u <= len(big):
					i := big[u-1]
					w.hash("", l.jobs[i].rel[1:], l.jobs[i].size, sums[i*size:(i+1)*size], &sizes[i], &fileErrs[i])
				default:
					b := l.batches[u-1-len(big)]
					for i := b.lo; i < b.hi && !stop.Load(); i++ {
						if j := l.jobs[i]; j.size < bigSize {
							w.hash(b.dir, j.rel[len(b.dir)+1:], j.size, sums[i*size:(i+1)*size], &sizes[i], &fileErrs[i])
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	if stop.Load() {
		return nil, nil
	}
	files := make([]File, 0, len(l.jobs))
	errs := l.errs
	for _, i := range order {
		if fileErrs[i] != nil {
			errs = append(errs, fileErrs[i])
			continue
		}
		files = append(files, File{Path: paths[i], Digest: sums[i*size : (i+1)*size : (i+1)*size], Size: sizes[i]})
	}
	slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(errPath(a), errPath(b)) })
	return files, errs
}

func errPath(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Path
	}
	return ""
}

// worker is one hashing goroutine's state.
type worker struct {
	h    hash.Hash
	r    *reader
	stop *atomic.Bool
	pr   *Progress
}

// hash hashes the file name in dir (a path relative to the root when dir
// is "") that the walk saw with walked bytes into sum, recording its size
// or its error.
func (w *worker) hash(dir, name string, walked int64, sum []byte, size *int64, errp *error) {
	w.h.Reset()
	n, err := w.r.hash(dir, name, walked, w.h, w.stop, w.pr)
	if err != nil {
		*errp = &Error{dir + "/" + name, err}
		return
	}
	w.h.Sum(sum[:0])
	*size = n
	if w.pr != nil {
		w.pr.Files.Add(1)
	}
}
