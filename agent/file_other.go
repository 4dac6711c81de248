//go:build !linux

package agent

import (
	"errors"
	"os"
)

type fileInfo struct {
	key      fileKey
	state    fileState
	uid, gid uint32
	mode     uint16
	regular  bool
	kind     string
}

func openNonblock(path string) (*os.File, error) { return nil, errors.ErrUnsupported }

func statFile(f *os.File) (fileInfo, error) { return fileInfo{}, errors.ErrUnsupported }
