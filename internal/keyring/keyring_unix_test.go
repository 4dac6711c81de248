//go:build unix

package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestBoundedReads: keys are small and regular. Before this package, both
// loaders read whatever a path named with os.ReadFile: `imago appraise
// --keyring /dev/zero` and an agent keyring directory holding a symlink to
// /dev/zero ran out of memory, and a FIFO hung them.
func TestBoundedReads(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "good.der"), cert(t, []byte{1, 2, 3, 4}), 0o644))
	must(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.pem")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo.pem"), 0o600))
	bigFile := filepath.Join(dir, "big.pem")
	must(t, os.WriteFile(bigFile, nil, 0o644))
	must(t, os.Truncate(bigFile, 100<<30)) // sparse: 100 GiB
	done := make(chan struct{})
	var (
		kr      any
		skipped []Skipped
		err     error
	)
	go func() {
		defer close(done)
		var k any
		k, skipped, err = Load(dir)
		kr = k
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Load hung (a FIFO with no writer)")
	}
	if err != nil || kr == nil {
		t.Fatalf("Load: %v", err)
	}
	why := map[string]error{}
	for _, s := range skipped {
		why[filepath.Base(s.Path)] = s.Err
	}
	for name, want := range map[string]error{"zero.pem": ErrNotRegular, "fifo.pem": ErrNotRegular, "big.pem": ErrTooLarge} {
		if !errors.Is(why[name], want) {
			t.Errorf("%s: skipped with %v, want %v", name, why[name], want)
		}
	}
	for _, p := range []string{"/dev/zero", filepath.Join(dir, "zero.pem"), filepath.Join(dir, "fifo.pem")} {
		if _, _, err := Load(p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Load(%s): %v, want ErrNotRegular", p, err)
		}
	}
	if _, _, err := Load(bigFile); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Load(100 GiB file): %v", err)
	}
}
