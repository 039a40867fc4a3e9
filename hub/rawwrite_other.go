//go:build !linux

package hub

import (
	"errors"
	"net"
)

// errNoRawWrites is returned by writeNonBlocking, which this platform does not have.
var errNoRawWrites = errors.New("non-blocking writes are not supported")

// iovec stands for the writev buffer descriptors this platform is not written with.
type iovec struct{}

// socketFD returns -1: on this platform every stream is written from a goroutine of its
// own.
func socketFD(net.Conn) int { return -1 }

func writeNonBlocking(int, [][]byte, []iovec) (int, []iovec, error) {
	return 0, nil, errNoRawWrites
}
