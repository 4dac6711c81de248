//go:build linux

package ctxio

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
)

func fifo(t *testing.T) string {
	t.Helper()
	testenv.Linux(t, "FIFOs")
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Opening a FIFO that has no writer waits until the context ends, then
// fails with the context's error; a writer that comes in time is read.
func TestOpenFIFO(t *testing.T) {
	p := fifo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Open(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no writer: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(p, []byte("hello"), 0o600)
	}()
	f, err := Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != "hello" {
		t.Errorf("%q %v", b, err)
	}
}

// A read that waits on a FIFO's silent writer ends when the context does.
func TestReadEndsWithContext(t *testing.T) {
	p := fifo(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := make(chan *os.File, 1)
	go func() {
		f, _ := os.OpenFile(p, os.O_WRONLY, 0)
		w <- f
	}()
	f, err := Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer func() { (<-w).Close() }()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if _, err := f.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Errorf("read: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// A regular file: the next read after the end fails.
	r, err := Open(ctx, os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Errorf("regular file after cancel: %v", err)
	}
}

func TestOpenRegular(t *testing.T) {
	p := fifo(t)
	for _, tc := range []struct{ path, kind string }{{p, "a FIFO"}, {"/dev/null", "a character device"}, {filepath.Dir(p), "a directory"}} {
		_, err := OpenRegular(context.Background(), tc.path)
		var pe *fs.PathError
		if !errors.Is(err, ErrNotRegular) || !errors.As(err, &pe) || pe.Path != tc.path {
			t.Errorf("%s: %v", tc.path, err)
		}
		if got := Named(tc.path, err).Error(); got != tc.path+": not a regular file ("+tc.kind+")" {
			t.Errorf("%s: %q", tc.path, got)
		}
	}
	f, err := OpenRegular(context.Background(), os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
