package hub

import (
	"context"
	"net"
	"time"
)

// A stream may carry several subscriptions, of several topics and hubs, on one client
// connection, as a multiplexed stream does. Each subscription is a leg of the stream,
// registered with a shard of its own topic: the shared writers write each leg's frames
// as they write a single stream's, under the stream's lock, so the frames of each leg
// keep their order and a frame of one never cuts into a frame of another. A stream that
// carries several subscriptions costs what a single stream costs, and a leg more for
// each: no goroutine while it keeps up, and one while its socket is full, which catches
// every leg up from its log.

// A Rewrite turns frame, read from the subscription of index i, into what the client
// is sent, appended to dst, which it returns. It is called for every frame of every
// subscription, in the order they are sent, never for two at once; frame is shared and
// must not be modified or kept.
type Rewrite func(dst []byte, i int, frame []byte) []byte

// Multi is what ServeMulti serves.
type Multi struct {
	// Subs are the subscriptions the stream carries.
	Subs []*Subscription
	// Rewrite rewrites their frames; nil sends them as they are.
	Rewrite Rewrite
	// Expires holds, for each subscription, when the client's access to it ends, or
	// zero if it does not. The stream ends at the first of them, with the ExpiredFrame
	// of each subscription whose access has expired, rewritten, as its last event.
	Expires []time.Time
	// OnClose, unless nil, is called once the stream has ended.
	OnClose func()
	// Head, unless empty, is written before the first frames, in the same write: the
	// response header, for a caller that has not written it.
	Head []byte
}

// ServeMulti hands the client connection conn to the hub, which from then on writes the
// frames of every subscription of m to it, each as Serve would, until the client leaves,
// a write fails or takes longer than the write timeout (the longest of the subscriptions'
// hubs), the first of their topics stops or a drain ends the first of them, the access
// to one of them expires (see Multi.Expires) or ctx ends: then the connection is closed
// and every subscription ends. The caller has written the response header, unless it
// gives it as Head, and may have read frames with Next or Ready; frames not read yet are
// written before ServeMulti returns. The caller must not use conn or the subscriptions
// again.
func ServeMulti(ctx context.Context, conn net.Conn, m Multi) {
	if len(m.Subs) == 0 {
		_ = conn.Close()
		if m.OnClose != nil {
			m.OnClose()
		}
		return
	}
	serve(ctx, conn, m)
}
