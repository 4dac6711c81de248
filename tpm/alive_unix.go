//go:build unix

package tpm

import (
	"errors"
	"net"
	"syscall"
)

// alive reports whether a held connection is still open at the peer's end:
// a non-blocking MSG_PEEK finds no data pending and no end of stream.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing pending, still open. n == 0: end of stream.
		// Data pending between commands: out of step; drop it too.
		ok = errors.Is(rerr, syscall.EAGAIN)
		return true
	})
	return err == nil && ok
}
