//go:build linux

package keyfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testfixture"
)

// cert is the real-kernel capture's signing certificate (keyid b2064dbe).
func cert(t *testing.T) string {
	return testfixture.Path(t, "realkernel/p-ima-sig-signed/x509_ima.pem")
}

// fifo makes a FIFO that no one writes to.
func fifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// within fails the test if fn does not return within d (a read that
// blocks or runs away).
func within(t *testing.T, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %v", d)
	}
}

func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 100<<30); err != nil { // a 100 GB sparse file
		t.Fatal(err)
	}
	zeroLink := filepath.Join(dir, "zero.pem")
	if err := os.Symlink("/dev/zero", zeroLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
		msg  string
	}{
		{"/dev/zero", ErrNotRegular, "a character device"},
		{zeroLink, ErrNotRegular, "a character device"},
		{fifo(t, dir), ErrNotRegular, "a FIFO"},
		{dir, ErrNotRegular, "a directory"},
		{big, ErrTooLarge, "too large"},
		{filepath.Join(dir, "none"), os.ErrNotExist, "no such file"},
	} {
		within(t, 5*time.Second, func() {
			_, err := Read(tc.path)
			var ke *Error
			if !errors.Is(err, tc.want) || !errors.As(err, &ke) || ke.Path != tc.path || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("%s: %v, want %v naming the path and %q", tc.path, err, tc.want, tc.msg)
			}
		})
	}
	data, err := Read(cert(t))
	if err != nil || !strings.Contains(string(data), "BEGIN CERTIFICATE") {
		t.Errorf("certificate: %v", err)
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	// A link to the certificate counts; a link to /dev/zero, a FIFO, junk
	// and a subfolder do not.
	for name, target := range map[string]string{"ima.pem": cert(t), "zero.pem": "/dev/zero"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	fifo(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "junk.der"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	skipped := map[string]string{}
	within(t, 5*time.Second, func() {
		kr, err := LoadKeyring([]string{dir}, func(p string, err error) { skipped[filepath.Base(p)] = err.Error() })
		if err != nil {
			t.Fatal(err)
		}
		if ids := kr.KeyIDs(); len(ids) != 1 || ids[0] != 0xb2064dbe {
			t.Errorf("keyids %08x, want [b2064dbe]", ids)
		}
	})
	for name, want := range map[string]string{
		"zero.pem": "not a regular file (a character device)",
		"fifo":     "not a regular file (a FIFO)",
		"junk.der": "digsig: neither an X.509 certificate nor a public key",
	} {
		if !strings.Contains(skipped[name], want) {
			t.Errorf("%s: skipped with %q, want %q", name, skipped[name], want)
		}
	}
	if len(skipped) != 3 {
		t.Errorf("skipped %v", skipped)
	}
	// Strict: the first bad file (in name order: fifo) is an error.
	within(t, 5*time.Second, func() {
		if _, err := LoadKeyring([]string{dir}, nil); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "fifo") {
			t.Errorf("strict: %v", err)
		}
	})
	// Named directly: /dev/zero and a FIFO fail at once.
	for _, p := range []string{"/dev/zero", filepath.Join(dir, "fifo")} {
		within(t, 5*time.Second, func() {
			if _, err := LoadKeyring([]string{p}, nil); !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: %v", p, err)
			}
		})
	}
	// A folder without a key.
	empty := t.TempDir()
	if _, err := LoadKeyring([]string{empty}, func(string, error) {}); err == nil || !strings.Contains(err.Error(), "no certificate or public key") {
		t.Errorf("empty folder: %v", err)
	}
}

// TestBoundedReads came with the agent's loader: before one loader served
// both, `imago appraise --keyring /dev/zero` and an agent keyring folder
// holding a link to /dev/zero ran out of memory, and a FIFO hung them.
func TestBoundedReads(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "good.der"), newCert(t, []byte{1, 2, 3, 4}), 0o644))
	must(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.pem")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo.pem"), 0o600))
	bigFile := filepath.Join(dir, "big.pem")
	must(t, os.WriteFile(bigFile, nil, 0o644))
	must(t, os.Truncate(bigFile, 100<<30)) // sparse: 100 GiB
	why := map[string]error{}
	within(t, 10*time.Second, func() {
		if _, err := LoadKeyring([]string{dir}, func(p string, err error) { why[filepath.Base(p)] = err }); err != nil {
			t.Errorf("LoadKeyring: %v", err)
		}
	})
	for name, want := range map[string]error{"zero.pem": ErrNotRegular, "fifo.pem": ErrNotRegular, "big.pem": ErrTooLarge} {
		if !errors.Is(why[name], want) {
			t.Errorf("%s: skipped with %v, want %v", name, why[name], want)
		}
	}
	for _, p := range []string{"/dev/zero", filepath.Join(dir, "zero.pem"), filepath.Join(dir, "fifo.pem")} {
		within(t, 10*time.Second, func() {
			if _, err := LoadKeyring([]string{p}, nil); !errors.Is(err, ErrNotRegular) {
				t.Errorf("LoadKeyring(%s): %v, want ErrNotRegular", p, err)
			}
		})
	}
	if _, err := LoadKeyring([]string{bigFile}, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("LoadKeyring(100 GiB file): %v", err)
	}
}
