package treehash

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imago-ima/imago/ima"
)

func TestHash(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"usr/bin/a": "a", "usr/bin/b c": "space", "etc/x": "x", "var/log/y": "skipped", "tmp/z": "skipped",
		"proc/1": "skipped", "opt/skip/q": "skipped by option", "big": string(make([]byte, 3<<20)),
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("/etc/passwd", filepath.Join(root, "usr/bin/link"))
	var pr Progress
	got, errs, err := Hash(context.Background(), root, Options{Alg: ima.HashSHA256, Skip: []string{"/opt/skip"}, AllOwners: true, Workers: 3, Progress: &pr})
	if err != nil || len(errs) != 0 {
		t.Fatal(err, errs)
	}
	var paths []string
	for _, f := range got {
		paths = append(paths, f.Path)
		src := files[f.Path[1:]]
		if f.Path == "/usr/bin/b_c" {
			src = files["usr/bin/b c"]
		}
		if sum := sha256.Sum256([]byte(src)); string(sum[:]) != string(f.Digest) {
			t.Errorf("%s: wrong digest", f.Path)
		}
	}
	if want := []string{"/big", "/etc/x", "/usr/bin/a", "/usr/bin/b_c"}; !slices.Equal(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
	if pr.Files.Load() != 4 || pr.FilesTotal.Load() != 4 || pr.Bytes.Load() != 3<<20+7 {
		t.Errorf("progress %d/%d files, %d bytes", pr.Files.Load(), pr.FilesTotal.Load(), pr.Bytes.Load())
	}
	// Root's files only (the default): as root, all five (no --skip-path); as another
	// user, none.
	got, _, _ = Hash(context.Background(), root, Options{Alg: ima.HashSHA1})
	if want := 5; os.Geteuid() != 0 {
		want = 0
		if len(got) != want {
			t.Errorf("as uid %d: %d files", os.Geteuid(), len(got))
		}
	} else if len(got) != want {
		t.Errorf("as root: %d files", len(got))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Hash(ctx, root, Options{Alg: ima.HashSHA256}); err == nil {
		t.Error("a canceled walk returned no error")
	}
	if _, _, err := Hash(context.Background(), filepath.Join(root, "etc/x"), Options{Alg: ima.HashSHA256}); err == nil {
		t.Error("a file as root: no error")
	}
}
