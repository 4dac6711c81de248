package realkernel

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

// TestNewcAgainstGNUCpio: GNU cpio (an independent reader) lists and
// extracts our archive: names, types, modes, contents and symlink targets.
func TestNewcAgainstGNUCpio(t *testing.T) {
	cpio := testenv.Tool(t, "cpio")
	im := image{}
	im.file("bin/tool", []byte("#!/bin/sh\necho hi\n"), 0o755)
	im.file("etc/a file", []byte("x"), 0o644)
	im.file("etc/empty", nil, 0o600)
	im.file("etc/odd", []byte("12345"), 0o644) // content not a multiple of 4
	im.symlink("bin/sh", "tool")
	im.dir("out")
	var buf bytes.Buffer
	if err := writeNewc(&buf, im.entries()); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	writeNewc(&again, im.entries())
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("two archives of the same files differ")
	}
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, e := range im {
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch e.mode & 0o170000 {
		case modeRegular:
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, e.data) || uint32(fi.Mode().Perm()) != e.mode&0o777 || !fi.Mode().IsRegular() {
				t.Errorf("%s: %q %v, want %q %o", name, got, fi.Mode(), e.data, e.mode&0o777)
			}
		case modeSymlink:
			if target, _ := os.Readlink(p); target != string(e.data) {
				t.Errorf("%s -> %q, want %q", name, target, e.data)
			}
		case modeDir:
			if !fi.IsDir() {
				t.Errorf("%s is not a directory", name)
			}
		}
		if fi.ModTime().Unix() != mtime && e.mode&0o170000 == modeRegular { // cpio -m restores files; a directory's changes as files land in it
			t.Errorf("%s: mtime %v", name, fi.ModTime())
		}
	}
	list := exec.Command(cpio, "-t", "--quiet")
	list.Stdin = bytes.NewReader(buf.Bytes())
	out, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(strings.ReplaceAll(string(out), "a file", "a_file")); len(got) != len(im) {
		t.Errorf("cpio -t lists %d names, want %d:\n%s", len(got), len(im), out)
	}
}
