// Package keyfile reads the small files that hold keys and certificates:
// signing keys, certificates and the files of a keyring folder. It is the
// one loader behind `imago appraise --keyring`, `imago agent --keyring`,
// `imago verify --keyring` and every --key flag: the edge that does the
// file I/O for ima/digsig's pure Keyring.
//
// Every read is bounded and only regular files are read: a key is a few
// KiB, so /dev/zero, a FIFO without a writer, /dev/tty or a 100 GB file
// given as a key is refused with a clear error at once, never read into
// memory or waited on. Symbolic links are followed (keyring folders often
// link to /etc/keys) and the file they reach is what is checked
// (ctxio.OpenRegular: non-blocking open, then fstat on the descriptor).
package keyfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/ctxio"
)

// Limits.
const (
	// MaxSize bounds one key or certificate file: 1 MiB holds a PEM
	// bundle of hundreds of certificates; a single key or certificate is
	// a few KiB.
	MaxSize = 1 << 20
	// MaxDirEntries bounds the entries of a keyring folder that are
	// looked at.
	MaxDirEntries = 4096
)

var (
	// ErrNotRegular: the path is not a regular file (a device, a FIFO, a
	// socket, a directory where a file is wanted).
	ErrNotRegular = ctxio.ErrNotRegular
	// ErrTooLarge: the file is larger than MaxSize.
	ErrTooLarge = fmt.Errorf("larger than %d bytes, too large for a key or certificate", MaxSize)
	// ErrTooManyEntries: a keyring folder holds more than MaxDirEntries
	// entries.
	ErrTooManyEntries = fmt.Errorf("more than %d entries, too many for a keyring folder", MaxDirEntries)
	// ErrNoKeys: a keyring folder from which no key was loaded.
	ErrNoKeys = errors.New("no certificate or public key in the folder")
)

// Error is a key file that cannot be used: "PATH: why".
type Error = ctxio.PathError

func fileError(path string, err error) error { return ctxio.Named(path, err) }

// Read returns the contents of the regular file at path, at most MaxSize
// bytes. Errors are *Error values naming the path and wrapping
// ErrNotRegular, ErrTooLarge or the system's error.
func Read(path string) ([]byte, error) {
	f, err := ctxio.OpenRegular(context.Background(), path)
	if err != nil {
		return nil, fileError(path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fileError(path, err)
	}
	if st.Size() > MaxSize {
		return nil, fileError(path, ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fileError(path, err)
	}
	if len(data) > MaxSize { // grew while read
		return nil, fileError(path, ErrTooLarge)
	}
	return data, nil
}

// LoadKeyring reads keys into a keyring from each path: a certificate or
// public key file (DER or PEM, several in one PEM file), or a folder of
// them, as the kernel's .ima keyring would hold them (see Walk for which
// files are read and what is skipped).
func LoadKeyring(paths []string, skip func(path string, err error)) (*digsig.Keyring, error) {
	var kr digsig.Keyring
	err := Walk(paths, skip, func(path string, data []byte) (int, error) {
		ids, err := kr.Add(data)
		return len(ids), err
	})
	if err != nil {
		return nil, err
	}
	return &kr, nil
}

// Walk reads each path, a key file or a folder of key files, and hands the
// contents of every file read (Read: a regular file, at most MaxSize) to
// add, which parses it and returns how many keys it took. A file named
// directly must load. In a folder, subfolders are passed over, and a file
// that is not a regular file, is too large or that add refuses is passed to
// skip with the reason and left out; with a nil skip, it is an error. A
// folder that yields no key at all is an error. Every error is an *Error
// naming the file.
func Walk(paths []string, skip func(path string, err error), add func(path string, data []byte) (int, error)) error {
	load := func(path string) (int, error) {
		data, err := Read(path)
		if err != nil {
			return 0, err
		}
		n, err := add(path, data)
		if err != nil {
			return n, &Error{Path: path, Err: err}
		}
		return n, nil
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fileError(p, err)
		}
		if !st.IsDir() {
			if _, err := load(p); err != nil {
				return err
			}
			continue
		}
		ents, err := readDir(p)
		if err != nil {
			return err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		total := 0
		for _, e := range ents {
			fp := filepath.Join(p, e.Name())
			if st, err := os.Stat(fp); err == nil && st.IsDir() {
				continue
			}
			n, err := load(fp)
			if err != nil {
				if skip == nil {
					return err
				}
				skip(fp, err)
				continue
			}
			total += n
		}
		if total == 0 {
			return &Error{Path: p, Err: ErrNoKeys}
		}
	}
	return nil
}

// readDir reads at most MaxDirEntries entries of a folder.
func readDir(dir string) ([]os.DirEntry, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fileError(dir, err)
	}
	defer d.Close()
	ents, err := d.ReadDir(MaxDirEntries + 1)
	if err != nil && err != io.EOF {
		return nil, fileError(dir, err)
	}
	if len(ents) > MaxDirEntries {
		return nil, &Error{Path: dir, Err: ErrTooManyEntries}
	}
	return ents, nil
}
