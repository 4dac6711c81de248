// Package testfixture finds the files tests read: the module's own test
// data, which a plain clone always has, and the optional extra corpora of
// ../shared.
//
//   - Path, Read and Glob resolve names under the module's testdata/ folder
//     (testdata/realkernel/..., testdata/public/<source>/...). A missing
//     file is a failure, never a skip: the fixtures are part of the
//     repository, so a test that cannot find one is broken.
//   - Extra, ReadExtra and ExtraGlob resolve names under ../shared/fixtures,
//     the larger corpus the repository's subset was taken from. Tests that
//     use it add coverage and are never the only test of anything. Where
//     ../shared is absent the test reports it through testenv.Missing (a
//     listed skip on a developer's machine, a failure under CI, which has
//     it); where it is present, a missing file is a failure.
//
// Names use forward slashes and are relative to testdata/ (or to
// ../shared/fixtures/ for the Extra functions), so one name such as
// "public/tpm2-tss/test/data/fapi/eventlog/sml-ima-sha1.bin" means the same
// file in both trees.
package testfixture

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// Root returns the module's root folder (the one holding go.mod), found
// from the working directory, which `go test` sets to the package's folder.
func Root(tb testing.TB) string {
	tb.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = os.ErrNotExist
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		tb.Fatalf("testfixture: no go.mod above the working directory: %v", rootErr)
	}
	return rootDir
}

// Dir returns the module's testdata folder.
func Dir(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(Root(tb), "testdata")
}

// Path returns the path of testdata/<name> and fails the test if it does
// not exist.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	return existing(tb, Dir(tb), name, "fixtures are part of the repository: restore it, or fix the name")
}

// existing returns dir/name, failing the test if it does not exist.
func existing(tb testing.TB, dir, name, hint string) string {
	tb.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("testfixture: %v (%s)", err, hint)
	}
	return p
}

// Read returns the contents of testdata/<name>, failing the test if it
// cannot be read.
func Read(tb testing.TB, name string) []byte {
	tb.Helper()
	return read(tb, Path(tb, name))
}

func read(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("testfixture: %v", err)
	}
	return b
}

// Glob returns the sorted paths under testdata matching pattern
// (filepath.Match syntax) and fails the test if none match.
func Glob(tb testing.TB, pattern string) []string {
	tb.Helper()
	return glob(tb, Dir(tb), pattern)
}

// SharedDir returns ../shared/fixtures next to the module, or reports it
// missing through testenv.Missing (a skip, or a failure under CI).
func SharedDir(tb testing.TB) string {
	tb.Helper()
	d := filepath.Join(filepath.Dir(Root(tb)), "shared", "fixtures")
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		testenv.Missing(tb, "shared", "the extra fixture corpus %s is absent (the repository's own subset in testdata/ is tested elsewhere)", d)
	}
	return d
}

// Extra returns the path of ../shared/fixtures/<name>: a testenv.Missing
// skip when ../shared is absent, a failure when it is present but lacks
// the file.
func Extra(tb testing.TB, name string) string {
	tb.Helper()
	return existing(tb, SharedDir(tb), name, "../shared is present but lacks it")
}

// ReadExtra returns the contents of ../shared/fixtures/<name> (see Extra).
func ReadExtra(tb testing.TB, name string) []byte {
	tb.Helper()
	return read(tb, Extra(tb, name))
}

// ExtraGlob is Glob over ../shared/fixtures (see Extra).
func ExtraGlob(tb testing.TB, pattern string) []string {
	tb.Helper()
	return glob(tb, SharedDir(tb), pattern)
}

func glob(tb testing.TB, dir, pattern string) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pattern)))
	if err != nil {
		tb.Fatalf("testfixture: %v", err)
	}
	if len(m) == 0 {
		tb.Fatalf("testfixture: nothing matches %s under %s", pattern, dir)
	}
	sort.Strings(m)
	return m
}
