// Package treehash hashes the files of a directory tree in parallel, for
// runtime-policy create --from-dir: the tree is a target's root filesystem
// (keylime-policy create --rootfs), paths are reported relative to it, and
// the directories keylime skips are skipped.
//
// The tree is walked first, by every worker at once (regular files owned
// by root, symlinks not followed, no descent into skipped directories or
// into mounts of another filesystem type); then the big files are hashed,
// largest first, and the small ones behind them a directory at a time, by
// one worker per core, so that no core idles while a big file is still
// being hashed at the end. On Linux a worker opens a small file relative
// to its directory, reads it with one read(2), and hashes a big file
// through a memory mapping, without copying it.
package treehash

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/imago-ima/imago/ima"
)

// SkipDirs are the directories of a root filesystem that keylime-policy
// create runtime never hashes (BASE_EXCLUDE_DIRS).
var SkipDirs = []string{"/sys", "/run", "/proc", "/lost+found", "/dev", "/media", "/snap", "/mnt", "/var", "/tmp"}

// ReadSize is the size of the buffer a worker reads files with: a file
// up to this size takes one read(2).
const ReadSize = 256 << 10

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
	// Workers walk and hash in parallel; runtime.GOMAXPROCS(0) when 0.
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

// tree is one walk's root and rules.
type tree struct {
	root      string // absolute, cleaned
	skip      map[string]bool
	allOwners bool
	sys       sysRoot // what the system needs to open files under root
}

// Hash walks root and hashes its files. It returns the files (sorted by
// path), the files that could not be read (sorted by path), and an error
// if root itself cannot be walked or ctx ends.
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
	real, err := filepath.EvalSymlinks(root) // a symlink to the tree: the tree (as keylime's os.walk)
	if err != nil {
		return nil, nil, err
	}
	t := &tree{root: real, skip: map[string]bool{}, allOwners: opts.AllOwners}
	for _, d := range SkipDirs {
		t.skip[d] = true
	}
	for _, d := range opts.Skip {
		d = filepath.Clean("/" + strings.TrimPrefix(d, "/"))
		for _, r := range []string{root, real} {
			if abs, err := filepath.Abs(d); err == nil && strings.HasPrefix(abs, r+"/") {
				d = strings.TrimPrefix(abs, r) // given as a path on this machine
				break
			}
		}
		t.skip[d] = true
	}
	if t.sys, err = openRoot(real); err != nil {
		return nil, nil, err
	}
	defer t.sys.close()
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	l, err := t.walk(ctx, workers)
	if err != nil {
		return nil, nil, err
	}
	if pr := opts.Progress; pr != nil {
		var total int64
		for _, j := range l.jobs {
			total += j.size
		}
		pr.FilesTotal.Store(int64(len(l.jobs)))
		pr.BytesTotal.Store(total)
		pr.Walked.Store(true)
	}
	files, errs := t.hashAll(ctx, l, opts.Alg, workers, opts.Progress)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return files, errs, nil
}

// abs is rel's path on this machine, for error messages.
func (t *tree) abs(rel string) string {
	if t.root == "/" {
		return rel
	}
	return t.root + rel
}
