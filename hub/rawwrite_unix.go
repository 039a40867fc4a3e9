//go:build unix

package hub

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxIovecs is the most buffers one writev takes (IOV_MAX).
const maxIovecs = 1024

// rawConn returns conn's raw connection when it can be written without blocking, as a
// plain TCP or Unix socket can; nil otherwise.
func rawConn(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeNonBlocking writes bufs to rc in one system call and returns the bytes the socket
// took, which may be none when its buffer is full.
func writeNonBlocking(rc syscall.RawConn, bufs [][]byte) (int, error) {
	if len(bufs) > maxIovecs {
		bufs = bufs[:maxIovecs]
	}
	var n int
	var err error
	cerr := rc.Write(func(fd uintptr) bool {
		for {
			if len(bufs) == 1 {
				n, err = syscall.Write(int(fd), bufs[0])
			} else {
				n, err = unix.Writev(int(fd), bufs)
			}
			if !errors.Is(err, syscall.EINTR) {
				return true
			}
		}
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case errors.Is(err, syscall.EAGAIN):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return n, nil
}
