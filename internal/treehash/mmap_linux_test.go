//go:build linux

package treehash

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imago-ima/imago/ima"
)

// A file cut short while it is mapped faults on the pages past its new end
// (SIGBUS): hashMapping returns errShrank instead of crashing the process.
func TestHashMappingShrank(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, 1<<20, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	if err := hashMapping(sha256.New(), m); !errors.Is(err, errShrank) {
		t.Fatalf("hashMapping of a shrunk file: %v, want errShrank", err)
	}
	if err := hashMapping(sha256.New(), m[:4096]); err != nil {
		t.Fatalf("the page still in the file: %v", err)
	}
}

// Canceling ends the hash of a file that would take minutes (a 100 GB
// sparse file) within a mapping window.
func TestHashCancelBigFile(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "sparse"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(root, "sparse"), 100<<30); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := Hash(ctx, root, Options{Alg: ima.HashSHA256, AllOwners: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
}
