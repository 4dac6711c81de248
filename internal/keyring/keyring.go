// Package keyring loads the keys that IMA appraisal verifies signatures
// with: X.509 certificates and public keys, PEM or DER, named one file at a
// time or as a directory of them, as the kernel's .ima keyring holds them
// and as evmctl takes them. It is the one loader behind `imago appraise
// --keyring` and `imago agent --keyring`; package ima/digsig parses and
// uses the keys.
//
// Every read is bounded: a key file must be a regular file (after
// following symlinks) of at most MaxFileSize bytes, and a directory may
// hold at most MaxDirEntries entries. A FIFO, a device or /dev/zero is
// refused without being read.
package keyring

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/imago-ima/imago/ima/digsig"
)

// Limits.
const (
	// MaxFileSize bounds one key file. A certificate is one or two KiB; a
	// PEM bundle of a few hundred certificates fits.
	MaxFileSize = 1 << 20
	// MaxDirEntries bounds the entries of a keyring directory that are
	// looked at.
	MaxDirEntries = 4096
)

// Errors; match with errors.Is.
var (
	// ErrNotRegular: a key file is not a regular file (a directory where a
	// file is read, a FIFO, a device).
	ErrNotRegular = errors.New("keyring: not a regular file")
	// ErrTooLarge: a key file is larger than MaxFileSize, or a directory
	// has more than MaxDirEntries entries.
	ErrTooLarge = errors.New("keyring: too large")
	// ErrNoKeys: a named directory holds no certificate or public key.
	ErrNoKeys = errors.New("keyring: no certificate or public key")
)

// Skipped is a file of a keyring directory that was left out, and why.
type Skipped struct {
	Path string
	Err  error
}

// Load reads every path into one keyring. A path is a key file (PEM with
// CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY blocks, or a DER certificate or
// SubjectPublicKeyInfo) or a directory of them. A named file that cannot be
// read or holds no usable key is an error. In a directory, subdirectories
// are ignored and a file that cannot be used is left out and listed in
// skipped; a directory from which no key is loaded is an error (ErrNoKeys).
func Load(paths ...string) (kr *digsig.Keyring, skipped []Skipped, err error) {
	kr = &digsig.Keyring{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, skipped, fmt.Errorf("keyring: %w", err)
		}
		if !fi.IsDir() {
			if err := addFile(kr, p); err != nil {
				return nil, skipped, fmt.Errorf("keyring: %s: %w", p, err)
			}
			continue
		}
		n, sk, err := addDir(kr, p)
		skipped = append(skipped, sk...)
		if err != nil {
			return nil, skipped, err
		}
		if n == 0 {
			return nil, skipped, fmt.Errorf("%w in %s", ErrNoKeys, p)
		}
	}
	return kr, skipped, nil
}

func addDir(kr *digsig.Keyring, dir string) (int, []Skipped, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, nil, fmt.Errorf("keyring: %w", err)
	}
	defer d.Close()
	ents, err := d.ReadDir(MaxDirEntries + 1)
	if err != nil && err != io.EOF {
		return 0, nil, fmt.Errorf("keyring: %s: %w", dir, err)
	}
	if len(ents) > MaxDirEntries {
		return 0, nil, fmt.Errorf("%w: %s has more than %d entries", ErrTooLarge, dir, MaxDirEntries)
	}
	var (
		n       int
		skipped []Skipped
	)
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := addFile(kr, p); err != nil {
			skipped = append(skipped, Skipped{Path: p, Err: err})
			continue
		}
		n++
	}
	return n, skipped, nil
}

func addFile(kr *digsig.Keyring, path string) error {
	data, err := ReadFile(path)
	if err != nil {
		return err
	}
	_, err = kr.Add(data)
	return err
}

// ReadFile reads a key or certificate file: a regular file (symlinks are
// followed) of at most MaxFileSize bytes. It opens without blocking, so a
// FIFO with no writer is refused rather than waited on.
func ReadFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s)", ErrNotRegular, fi.Mode().Type())
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, fi.Size(), MaxFileSize)
	}
	// The size can grow while reading (or lie, on a pseudo filesystem):
	// read one byte more than allowed to notice.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxFileSize)
	}
	return data, nil
}
