//go:build !linux

package hub

import "net"

// iovec stands for the writev buffer descriptors this platform is not written with.
type iovec struct{}

// socketFD returns -1: on this platform every stream is written from a goroutine of its
// own.
func socketFD(net.Conn) int { return -1 }

func writeNonBlocking(int, [][]byte, []iovec) (int, []iovec, error) {
	return 0, nil, errNoRawWrites
}
