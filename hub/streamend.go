package hub

import (
	"context"
	"time"
)

// afterEnd runs f when the stream's context ends other than by its own cancel: at end,
// unless it is zero, or with parent. A stream that only close can end needs no such watch,
// which would hold a registration, a channel and a map for each idle stream.
func (st *stream) afterEnd(parent context.Context, end time.Time, f func()) {
	if parent.Done() == nil && end.IsZero() {
		return
	}
	context.AfterFunc(st.ctx, f)
}
