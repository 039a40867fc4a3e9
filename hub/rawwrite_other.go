//go:build !unix

package hub

import (
	"net"
	"syscall"
)

// rawConn returns nil: on this platform every stream is written from a goroutine of its
// own.
func rawConn(net.Conn) syscall.RawConn { return nil }

func writeNonBlocking(syscall.RawConn, [][]byte) (int, error) { return 0, errNoRawWrites }
