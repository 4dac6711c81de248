//go:build !unix

package treehash

import (
	"errors"
	"io/fs"
	"os"
)

// openNoFollow opens path for reading (the walk does not follow symlinks;
// Windows has no O_NOFOLLOW).
func openNoFollow(path string) (*os.File, error) { return os.Open(path) }

// fsType is not known here: mounts are not told apart.
func fsType(path string) (int64, error) { return 0, errors.ErrUnsupported }

// ownerUID: files have no uid here; every file counts.
func ownerUID(info fs.FileInfo) (uint32, bool) { return 0, false }
