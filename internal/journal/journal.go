package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// ErrBroken: an append failed and could not be undone; every later call
// of the File fails with an error wrapping it.
var ErrBroken = errors.New("journal: broken")

// File is an append-only file whose appends are durable when they return.
// It is safe for concurrent use; appends are serialised.
type File struct {
	mu   sync.Mutex
	f    *os.File
	path string
	size int64
	err  error // sticky: set when a failed append could not be undone
}

// Open opens (creating with mode 0600 if needed) the journal at path. A new
// file's directory entry is made durable too.
func Open(path string) (*File, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("journal: %s is not a regular file", path)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &File{f: f, path: path, size: fi.Size()}, nil
}

// Path returns the file's path.
func (j *File) Path() string { return j.path }

// Size returns the durable size of the file: the end of the last successful
// Append.
func (j *File) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// Append writes rec at the end of the file and makes it durable before
// returning. On failure the file is cut back to its previous size, so a later
// Append never follows a partial record; if even that fails the File is
// broken and every later call returns the error.
func (j *File) Append(rec []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	n, err := j.f.WriteAt(rec, j.size)
	if err == nil && n != len(rec) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = datasync(j.f)
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.err = fmt.Errorf("%w: %s: append failed (%v) and could not be undone: %w", ErrBroken, j.path, err, terr)
			return j.err
		}
		return fmt.Errorf("journal: %s: append: %w", j.path, err)
	}
	j.size += int64(n)
	return nil
}

// Truncate cuts the file to n bytes (n <= Size) durably. The agent uses it to
// drop a torn final record that was never acknowledged.
func (j *File) Truncate(n int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if n < 0 || n > j.size {
		return fmt.Errorf("journal: %s: truncate to %d outside [0, %d]", j.path, n, j.size)
	}
	if err := j.f.Truncate(n); err != nil {
		return fmt.Errorf("journal: %s: truncate: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: %s: sync: %w", j.path, err)
	}
	j.size = n
	return nil
}

// ReaderAt returns a reader over the file's durable bytes, [0, Size).
func (j *File) ReaderAt() *io.SectionReader {
	return io.NewSectionReader(j.f, 0, j.Size())
}

// Close closes the file.
func (j *File) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}

// SyncDir fsyncs a directory, making creations and renames in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// WriteFileAtomic replaces path with data durably: the data goes to a
// temporary file in the same directory, which is fsynced and renamed over
// path, and then the directory is fsynced. A reader sees the old or the new
// content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("journal: write %s: %w", name, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	ok = true
	return SyncDir(dir)
}
