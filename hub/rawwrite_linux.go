package hub

import (
	"net"
	"syscall"
	"unsafe"
)

// iovec is one buffer of a writev.
type iovec = syscall.Iovec

// maxIovecs is the most buffers one writev takes (IOV_MAX).
const maxIovecs = 1024

// socketFD returns the file descriptor of conn when it is a plain socket that the shared
// writers can write to without blocking, or -1. The descriptor stays valid while the
// stream is open: only stream.close closes conn, and it waits for a write in progress.
func socketFD(conn net.Conn) int {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1
	}
	return fd
}

// writeNonBlocking writes bufs to the non-blocking socket fd in one system call and
// returns the bytes the socket took, which may be none when its buffer is full. iov is
// scratch space for writev. The call never blocks, so it is made without handing the
// CPU's scheduler slot over, as a blocking call would.
func writeNonBlocking(fd int, bufs [][]byte, iov []iovec) (int, []iovec, error) {
	if len(bufs) > maxIovecs {
		bufs = bufs[:maxIovecs]
	}
	for {
		var n uintptr
		var errno syscall.Errno
		if len(bufs) == 1 {
			b := bufs[0]
			n, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		} else {
			iov = iov[:0]
			for _, b := range bufs {
				v := iovec{Base: unsafe.SliceData(b)}
				v.SetLen(len(b))
				iov = append(iov, v)
			}
			n, _, errno = syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
		}
		switch errno {
		case 0:
			return int(n), iov, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, iov, nil
		default:
			return 0, iov, errno
		}
	}
}
