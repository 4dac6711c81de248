//go:build !linux

package agent

import (
	"errors"
	"net"
	"os"
)

func supported() error { return ErrNotSupported }

const oNoFollow = 0

var errWouldBlock = errors.ErrUnsupported

func flockFile(f *os.File) error { return errors.ErrUnsupported }

type peer struct {
	uid uint32
	pid int32
}

func peerCred(c *net.UnixConn) (peer, error) { return peer{}, errors.ErrUnsupported }

func temporaryAccept(err error) bool { return false }

func peerGone(c *net.UnixConn) bool { return true }
