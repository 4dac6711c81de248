package agent

import (
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func supported() error { return nil }

// oNoFollow keeps a lock file from being a symlink planted elsewhere.
const oNoFollow = syscall.O_NOFOLLOW

var errWouldBlock = syscall.EWOULDBLOCK

// flockFile takes an exclusive flock(2) on f without waiting.
func flockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			return err
		}
	}
}

// peer is a socket client's credentials (SO_PEERCRED).
type peer struct {
	uid uint32
	pid int32
}

func peerCred(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var (
		cred *unix.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, err
	}
	if cerr != nil {
		return peer{}, cerr
	}
	return peer{uid: cred.Uid, pid: cred.Pid}, nil
}

// temporaryAccept reports an accept error that passes: out of file
// descriptors or memory, or a connection that went away before it was
// accepted.
func temporaryAccept(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.ECONNABORTED, unix.EINTR, unix.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// peerGone reports whether the client closed its end entirely (as opposed
// to only its writing half, after which it still reads the answer).
func peerGone(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return true
	}
	gone := true
	raw.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if n, err := unix.Poll(pfd, 0); err == nil && n == 1 {
			gone = pfd[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return gone
}
