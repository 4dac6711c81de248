package agent

import (
	"os"

	"golang.org/x/sys/unix"
)

// openNonblock opens path read-only without blocking: a FIFO without a
// writer opens at once (and is then refused as not regular), a file whose
// reads would wait reads EAGAIN, a terminal does not become the agent's.
func openNonblock(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_LARGEFILE, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func statFile(f *os.File) (fileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileInfo{}, err
	}
	return statInfo(&st), nil
}

func statInfo(st *unix.Stat_t) fileInfo {
	fi := fileInfo{key: fileKey{uint64(st.Dev), st.Ino}, uid: st.Uid, gid: st.Gid, mode: uint16(st.Mode),
		state: fileState{size: st.Size, mtime: timespec{st.Mtim.Sec, st.Mtim.Nsec}, ctime: timespec{st.Ctim.Sec, st.Ctim.Nsec}}}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		fi.regular, fi.kind = true, "regular file"
	case unix.S_IFDIR:
		fi.kind = "directory"
	case unix.S_IFIFO:
		fi.kind = "FIFO"
	case unix.S_IFCHR:
		fi.kind = "character device"
	case unix.S_IFBLK:
		fi.kind = "block device"
	case unix.S_IFSOCK:
		fi.kind = "socket"
	default:
		fi.kind = "special file"
	}
	return fi
}
