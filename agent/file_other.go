//go:build !linux

package agent

import (
	"errors"
	"os"
)

func openNonblock(path string) (*os.File, error) { return nil, errors.ErrUnsupported }

func statFile(f *os.File) (fileInfo, error) { return fileInfo{}, errors.ErrUnsupported }
