package caddymodule

import (
	"context"
	"net/http"

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
	}
}

// handOver hands the connection to the hub once, after its first frames, if every
// wrapper of w still passes bytes through unchanged, and reports whether it did. The
// hub then owns the connection and the streams, ends the connection at the first
// stream's expiry with that stream's expired event, as run does, and, as the connection
// ends, gives back what the streams' routes hold for them and forgets them for a drain.
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
	var m hub.Multi
	var of []int // the stream of each leg
	var served []*muxSub
	for i, s := range subs {
		if s != nil {
			m.Subs, m.Expires = append(m.Subs, s.sub), append(m.Expires, s.expires)
			of, served = append(of, i), append(served, s)
		}
	}
	m.Rewrite = func(dst []byte, i int, f []byte) []byte { return c.rewrite(dst, of[i], f) }
	m.OnClose = func() {
		for _, s := range served {
			s.release()
		}
		c.forget()
	}
	hub.ServeMulti(c.stop, conn, m)
	return true
}

// closeSub closes a stream as the request ends, unless the hub owns it.
func (c *muxConn) closeSub(s *muxSub) {
	if !c.handedOver {
		s.close()
	}
}

// untrack forgets the connection's streams as the request ends, unless the hub owns
// them.
func (c *muxConn) untrack() {
	if !c.handedOver {
		c.forget()
	}
}
