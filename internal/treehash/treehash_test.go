package treehash

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	os.Symlink(filepath.Join(root, "etc"), filepath.Join(root, "usr/etc-link")) // a directory: not followed
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
	// A symlink to the tree as the root: the tree, and --skip-path under the link.
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	got, _, err = Hash(context.Background(), link, Options{Alg: ima.HashSHA256, Skip: []string{filepath.Join(link, "opt/skip")}, AllOwners: true})
	if err != nil || len(got) != 4 {
		t.Errorf("through a symlink to the root: %d files, %v", len(got), err)
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

// Files of every size around the read buffer, the big-file threshold and
// the mapping window hash as crypto/sha256 hashes them, with 1 to 3
// workers.
func TestHashSizes(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 32<<20+5) // past the first mapping window on Linux
	for i := range data {
		data[i] = byte(i * 31)
	}
	sizes := []int{0, 1, 4095, ReadSize - 1, ReadSize, ReadSize + 1, bigSize - 1, bigSize, bigSize + 1, 3*ReadSize + 7, 32<<20 + 5}
	want := 0
	for i, n := range sizes {
		// Many files in one directory (several batches), and some in others.
		for k := range 70 {
			dir := filepath.Join(root, "d", string(rune('a'+k%3)))
			os.MkdirAll(dir, 0o755)
			if n > bigSize && k > 0 {
				break
			}
			p := filepath.Join(dir, fmt.Sprintf("s%02d-%02d", i, k))
			if err := os.WriteFile(p, data[k:k+n], 0o644); err != nil {
				t.Fatal(err)
			}
			want++
		}
	}
	for _, workers := range []int{1, 2, 3} {
		got, errs, err := Hash(context.Background(), root, Options{Alg: ima.HashSHA256, AllOwners: true, Workers: workers})
		if err != nil || len(errs) != 0 {
			t.Fatal(err, errs)
		}
		if !slices.IsSortedFunc(got, func(a, b File) int { return strings.Compare(a.Path, b.Path) }) {
			t.Error("files not sorted by path")
		}
		n := 0
		for _, f := range got {
			var i, k int
			fmt.Sscanf(filepath.Base(f.Path), "s%02d-%02d", &i, &k)
			want := sha256.Sum256(data[k : k+sizes[i]])
			if string(f.Digest) != string(want[:]) || f.Size != int64(sizes[i]) {
				t.Errorf("%d workers: %s (%d bytes): digest %x size %d", workers, f.Path, sizes[i], f.Digest, f.Size)
			}
			n++
		}
		if n != want {
			t.Errorf("%d workers: %d files, want %d", workers, n, want)
		}
	}
}
