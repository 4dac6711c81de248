package xattr

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

// Values written here read back with getfattr (attr package), and values
// setfattr wrote read back here.
func TestRoundTripWithAttrTools(t *testing.T) {
	getfattr, setfattr := testenv.Tool(t, "getfattr"), testenv.Tool(t, "setfattr")
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	name := "user.imago-test"
	if os.Geteuid() == 0 {
		name = IMA
	}
	if _, err := Get(p, name); !errors.Is(err, ErrNoData) {
		if errors.Is(err, errors.ErrUnsupported) {
			testenv.Env(t, testenv.Kernel, "%s: the filesystem keeps no %s xattrs here: %v", dir, name, err)
		}
		t.Fatalf("absent attribute: %v", err)
	}
	want := []byte{0x04, 0x04, 1, 2, 3}
	if err := Set(p, name, want); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			testenv.Env(t, testenv.Kernel, "%s: the filesystem keeps no %s xattrs here: %v", dir, name, err)
		}
		t.Fatal(err)
	}
	out, err := exec.Command(getfattr, "--only-values", "-n", name, p).Output()
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("getfattr: %x %v, want %x", out, err, want)
	}
	if err := exec.Command(setfattr, "-n", name, "-v", "0x0102", p).Run(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, get := range []func() ([]byte, error){
		func() ([]byte, error) { return Get(p, name) },
		func() ([]byte, error) { return LGet(p, name) },
		func() ([]byte, error) { return FGet(f, name) },
	} {
		if got, err := get(); err != nil || !bytes.Equal(got, []byte{1, 2}) {
			t.Errorf("got %x %v, want 0102", got, err)
		}
	}
	if err := Remove(p, name); err != nil {
		t.Fatal(err)
	}
	if err := Remove(p, name); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, err := Get(filepath.Join(dir, "missing"), name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
