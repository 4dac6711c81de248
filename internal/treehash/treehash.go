// Package treehash hashes the files of a directory tree in parallel, for
// runtime-policy create --from-dir: the tree is a target's root filesystem
// (keylime-policy create --rootfs), paths are reported relative to it, and
// the directories keylime skips are skipped.
//
// The tree is walked first (regular files owned by root, symlinks not
// followed, no descent into skipped directories or into mounts of another
// filesystem type), then the files are hashed largest first by one worker
// per core, each reading into its own buffer, so that a few big files do
// not leave a core idle at the end.
package treehash

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imago-ima/imago/ima"
)

// SkipDirs are the directories of a root filesystem that keylime-policy
// create runtime never hashes (BASE_EXCLUDE_DIRS).
var SkipDirs = []string{"/sys", "/run", "/proc", "/lost+found", "/dev", "/media", "/snap", "/mnt", "/var", "/tmp"}

// Options control a walk.
type Options struct {
	// Alg is the file digest algorithm.
	Alg ima.HashAlg
	// Skip are more directories to leave out, as paths in the target's
	// filesystem ("/opt/cache") or on this machine under the root.
	Skip []string
	// AllOwners hashes files of every owner; by default only files owned
	// by root (uid 0) are, as keylime-policy does for a root filesystem.
	AllOwners bool
	// Workers hash in parallel; runtime.GOMAXPROCS(0) when 0.
	Workers int
	// Progress, if set, is updated as files are hashed.
	Progress *Progress
}

// Progress counts work done; read it from another goroutine.
type Progress struct {
	FilesTotal, BytesTotal atomic.Int64 // known once the walk is done
	Files, Bytes           atomic.Int64
	Walked                 atomic.Bool
}

// File is one hashed file.
type File struct {
	// Path is the file's path in the target's filesystem: relative to the
	// root, with a leading '/', and spaces replaced by '_' as IMA writes
	// names.
	Path   string
	Digest []byte
	Size   int64
}

// Error is a file that could not be read; the walk goes on without it.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("treehash: %s: %v", e.Path, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

type job struct {
	abs, rel string
	size     int64
}

// Hash walks root and hashes its files. It returns the files (sorted by
// path), the files that could not be read, and an error if root itself
// cannot be walked or ctx ends.
func Hash(ctx context.Context, root string, opts Options) ([]File, []error, error) {
	if opts.Alg.New() == nil {
		return nil, nil, fmt.Errorf("treehash: cannot hash with %s", opts.Alg)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, nil, err
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("treehash: %s is not a directory", root)
	}
	skip := map[string]bool{}
	for _, d := range SkipDirs {
		skip[d] = true
	}
	for _, d := range opts.Skip {
		d = filepath.Clean("/" + strings.TrimPrefix(d, "/"))
		if abs, err := filepath.Abs(d); err == nil && strings.HasPrefix(abs, root+"/") {
			d = strings.TrimPrefix(abs, root) // given as a path on this machine
		}
		skip[d] = true
	}
	rootFS, _ := fsType(root)
	var jobs []job
	var errs []error
	walkErr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if err != nil {
			if p == root {
				return err
			}
			errs = append(errs, &Error{rel, err})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p == root {
				return nil
			}
			if skip[rel] {
				return fs.SkipDir
			}
			if t, err := fsType(p); err == nil && t != rootFS {
				return fs.SkipDir // a mount of another filesystem type (keylime: match_rootfs)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // symlinks, devices, sockets, FIFOs
		}
		info, err := d.Info()
		if err != nil {
			errs = append(errs, &Error{rel, err})
			return nil
		}
		if uid, ok := ownerUID(info); ok && uid != 0 && !opts.AllOwners {
			return nil
		}
		jobs = append(jobs, job{abs: p, rel: rel, size: info.Size()})
		return nil
	})
	if walkErr != nil {
		return nil, nil, walkErr
	}
	slices.SortFunc(jobs, func(a, b job) int {
		switch {
		case a.size > b.size:
			return -1
		case a.size < b.size:
			return 1
		}
		return strings.Compare(a.rel, b.rel)
	})
	if pr := opts.Progress; pr != nil {
		var total int64
		for _, j := range jobs {
			total += j.size
		}
		pr.FilesTotal.Store(int64(len(jobs)))
		pr.BytesTotal.Store(total)
		pr.Walked.Store(true)
	}
	out := make([]File, len(jobs))
	fileErrs := make([]error, len(jobs))
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := opts.Alg.New()
			buf := make([]byte, 256<<10)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				j := jobs[i]
				h.Reset()
				n, err := hashFile(j.abs, h, buf)
				if err != nil {
					fileErrs[i] = &Error{j.rel, err}
					continue
				}
				out[i] = File{Path: strings.ReplaceAll(j.rel, " ", "_"), Digest: h.Sum(nil), Size: n}
				if pr := opts.Progress; pr != nil {
					pr.Files.Add(1)
					pr.Bytes.Add(n)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	files := out[:0]
	for i := range out {
		if fileErrs[i] != nil {
			errs = append(errs, fileErrs[i])
			continue
		}
		files = append(files, out[i])
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files, errs, nil
}

// onlyReader hides WriteTo/ReadFrom so that io.CopyBuffer uses buf.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
