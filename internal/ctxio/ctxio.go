// Package ctxio opens and reads the files a user names so that nothing
// waits past a canceled context (SIGINT, SIGTERM) and nothing that should be
// a plain file is waited on at all:
//
//   - Open opens any file. Opening a FIFO blocks in open(2) until a writer
//     opens it (as cat does); Open gives up that wait when the context
//     ends. Reads from the file end with the context's error: a regular
//     file at the next read, a FIFO, pipe or socket at once (a read
//     deadline wakes Go's poller).
//   - OpenRegular opens only a regular file: non-blocking, then checked
//     with fstat on the descriptor, so /dev/zero, a FIFO or a socket is
//     refused at once with ErrNotRegular (also when a path is swapped
//     between a check and the open).
//   - NewReader wraps another reader (standard input) with the same check
//     before each read. A read already blocked in the kernel on a terminal
//     or a blocking pipe is not interrupted: cmd/imago exits after a short
//     grace instead.
package ctxio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// ErrNotRegular: a path that must be a regular file is not.
var ErrNotRegular = errors.New("not a regular file")

// File is an open file whose reads end when its context does. It is not
// an *os.File on purpose: io.Copy would use os.File's WriteTo (sendfile,
// splice) and read past the context.
type File struct {
	f    *os.File
	ctx  context.Context
	stop func() bool
}

// Open opens name for reading; see the package comment.
func Open(ctx context.Context, name string) (*File, error) {
	f, err := openFIFOAware(ctx, name)
	if err != nil {
		return nil, err
	}
	return wrap(ctx, f), nil
}

func wrap(ctx context.Context, f *os.File) *File {
	cf := &File{f: f, ctx: ctx}
	// Regular files never wait in the poller; SetReadDeadline then fails
	// harmlessly.
	cf.stop = context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	return cf
}

func openFIFOAware(ctx context.Context, name string) (*os.File, error) {
	if st, err := os.Stat(name); err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
		return os.Open(name)
	}
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := os.Open(name)
		ch <- result{f, err}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-ctx.Done():
		go func() { // the open ends when a writer comes, or never
			if r := <-ch; r.f != nil {
				r.f.Close()
			}
		}()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("waiting for a writer: %w", ctx.Err())}
	}
}

// OpenRegular opens name only if it is a regular file (symbolic links are
// followed); anything else is an *fs.PathError wrapping ErrNotRegular that
// says what the file is.
func OpenRegular(ctx context.Context, name string) (*File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (%s)", ErrNotRegular, Kind(st.Mode()))}
	}
	return wrap(ctx, f), nil
}

// Read reads from the file, or returns the context's error once it is done.
func (f *File) Read(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := f.f.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && f.ctx.Err() != nil {
		err = f.ctx.Err()
	}
	return n, err
}

// Close closes the file.
func (f *File) Close() error {
	f.stop()
	return f.f.Close()
}

// Stat is os.File's.
func (f *File) Stat() (fs.FileInfo, error) { return f.f.Stat() }

// Seek is os.File's (a second pass over a regular file).
func (f *File) Seek(off int64, whence int) (int64, error) { return f.f.Seek(off, whence) }

// Name is the name the file was opened by.
func (f *File) Name() string { return f.f.Name() }

// NewReader returns r with the context checked before every read.
func NewReader(ctx context.Context, r io.Reader) io.Reader { return &reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Kind names a file type for an error message: "a FIFO", "a character
// device".
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a regular file"
	}
	return "mode " + m.String()
}

// PathError is "PATH: why": a file a user named, and what is wrong with it.
// Unlike *fs.PathError it does not print the system call ("open"), which
// says nothing to the user.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// Named returns err as a *PathError for path: an *fs.PathError gives its
// cause, a *PathError for the same path is returned as it is.
func Named(path string, err error) error {
	var ne *PathError
	if errors.As(err, &ne) && ne.Path == path {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = pe.Err
	}
	return &PathError{Path: path, Err: err}
}
