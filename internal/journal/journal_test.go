package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestAppendTruncateReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{"one", "two", "three"} {
		if err := j.Append([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	if j.Size() != 11 {
		t.Fatalf("size %d", j.Size())
	}
	if err := j.Truncate(6); err != nil {
		t.Fatal(err)
	}
	if err := j.Truncate(7); err == nil {
		t.Fatal("truncate beyond size accepted")
	}
	j.Close()
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, []byte("onetwo")) {
		t.Fatalf("file %q", got)
	}
	j, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Size() != 6 {
		t.Fatalf("reopened size %d", j.Size())
	}
	j.Append([]byte("!"))
	b := make([]byte, 7)
	if _, err := j.ReaderAt().ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if string(b) != "onetwo!" {
		t.Fatalf("read %q", b)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	for _, s := range []string{"a", "bb"} {
		if err := WriteFileAtomic(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != s {
			t.Fatalf("got %q want %q", got, s)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestOpenRejectsDirectory(t *testing.T) {
	if _, err := Open(t.TempDir()); err == nil {
		t.Fatal("directory accepted")
	}
}
