//go:build !linux

package xattr

import (
	"errors"
	"fmt"
	"os"
)

func unsupported(op string) error { return fmt.Errorf("xattr: %s: %w", op, errors.ErrUnsupported) }

// Get returns the value of the attribute name of path.
func Get(path, name string) ([]byte, error) { return nil, unsupported("getxattr") }

// LGet is Get for the link itself.
func LGet(path, name string) ([]byte, error) { return nil, unsupported("lgetxattr") }

// FGet is Get on an open file.
func FGet(f *os.File, name string) ([]byte, error) { return nil, unsupported("fgetxattr") }

// Set writes the attribute name of path.
func FDGet(fd int, name string) ([]byte, error) { return nil, unsupported("fgetxattr") }

func Set(path, name string, value []byte) error { return unsupported("setxattr") }

// Remove deletes the attribute name of path.
func Remove(path, name string) error { return unsupported("removexattr") }
