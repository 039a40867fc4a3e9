//go:build !linux

package hub

// closeWatch stands for the epoll watch this platform does not have: every stream has a
// goroutine of its own that notices its client leave.
type closeWatch struct{}

func newCloseWatch() *closeWatch { return nil }

func (*closeWatch) add(*stream) bool { return false }

func (*closeWatch) remove(uint64, int) {}

func (*closeWatch) run() {}

func (*closeWatch) stop() {}

func (*closeWatch) watching() int { return 0 }
