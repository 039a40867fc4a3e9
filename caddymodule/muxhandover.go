package caddymodule

import (
	"context"
	"net/http"
	"time"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// A mux connection over HTTP/1.x is handed to the hubs' shared writers as a single
// stream is (see handover.go), by the same rules: net/http's own ResponseWriter beneath
// pass-through wrappers only, the response header and the first frames written through
// the route. The hub then writes each stream's frames, rewritten as mux events, to the
// raw connection, and an idle connection holds no goroutine, however many streams it
// carries. Its streams stay among the mux's: a reload drains the connection as it drains
// one written through the ResponseWriter, ending it when its first stream ends, so that
// its client resumes every stream on the new config; an exit ends it at once.

// handover is what a mux connection needs to be handed over.
type handover struct {
	hj         http.Hijacker   // nil: the connection stays on the ResponseWriter path
	stop       context.Context // ended when the process exits
	until      time.Time       // when the request's access ends; zero if it does not
	forget     func()          // forgets the connection's streams for a drain
	handedOver bool
}

// prepareHandover finds, before the response header is written, whether the connection
// may be handed over, and, if so, has its body end with the connection rather than be
// chunked, as a handed-over single stream's does.
func (c *muxConn) prepareHandover(w http.ResponseWriter, r *http.Request, stop context.Context) {
	if r.ProtoMajor != 1 {
		return
	}
	if c.hj = hijacker(w, false); c.hj != nil {
		w.Header().Set("Transfer-Encoding", "identity")
		c.stop = stop
		c.until, _ = r.Context().Deadline()
	}
}

// handOver hands the connection to the hub once, after its first frames, if every
// wrapper of w still passes bytes through unchanged, and reports whether it did. The
// hub then owns the connection and the streams, and forgets them for a drain as the
// connection ends.
func (c *muxConn) handOver(w http.ResponseWriter, subs []*muxSub) bool {
	hj := c.hj
	c.hj = nil
	if hj == nil || hijacker(w, true) == nil {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	c.handedOver = true
	c.buf = nil // the hub writes from here on: an idle connection keeps no frames
	var legs []*hub.Subscription
	var of []int // the stream of each leg
	for i, s := range subs {
		if s != nil {
			legs = append(legs, s.sub)
			of = append(of, i)
		}
	}
	hub.ServeMulti(c.stop, conn, hub.Multi{
		Subs:    legs,
		Rewrite: func(dst []byte, i int, f []byte) []byte { return c.rewrite(dst, of[i], f) },
		Until:   c.until,
		OnClose: c.forget,
	})
	return true
}

// closeSub closes a stream's subscription as the request ends, unless the hub owns it.
func (c *muxConn) closeSub(sub *hub.Subscription) {
	if !c.handedOver {
		sub.Close()
	}
}

// untrack forgets the connection's streams as the request ends, unless the hub owns
// them.
func (c *muxConn) untrack() {
	if !c.handedOver {
		c.forget()
	}
}
