package hub

import (
	"net/http"
	"sync"
	"time"
)

// DeniedGrace is how long the streams of a loop whose upstream refused its credential
// stay open after the `upstream` event that says so, for the event to reach them; then
// they are closed.
const DeniedGrace = 500 * time.Millisecond

// denials remembers the loops whose upstream refused their credential.
type denials struct {
	mu sync.Mutex
	m  map[string]denial
}

type denial struct {
	status int
	until  time.Time
}

// StopOnDenied makes the source stop its loop at once when the upstream answers 401 or
// 403, for a loop that polls with one client's credentials: its subscribers are told,
// then closed, no further poll is made with the credential, and Denied reports the
// status for the loop's key for the hub's Linger, after which a new subscriber starts a
// new loop that polls again.
func (s *PollSource) StopOnDenied() { s.stopOnDenied = true }

// denied reports whether r makes the source stop its loop.
func (s *PollSource) denied(status int) bool {
	return s.stopOnDenied && (status == http.StatusUnauthorized || status == http.StatusForbidden)
}

// deny records that the upstream refused t's credential with status, and removes t once
// its subscribers had DeniedGrace to read the status.
func (h *Hub) deny(t *Topic, status int) {
	h.denied.mu.Lock()
	if h.denied.m == nil {
		h.denied.m = make(map[string]denial)
	}
	now := h.cfg.Now()
	for k, d := range h.denied.m { // forget the denials that ran out
		if now.After(d.until) {
			delete(h.denied.m, k)
		}
	}
	h.denied.m[t.key] = denial{status: status, until: now.Add(h.cfg.Linger)}
	h.denied.mu.Unlock()
	time.AfterFunc(DeniedGrace, func() { h.remove(t) })
}

// Denied returns the status with which the upstream refused the credential of the loop
// for key, if it did within the hub's Linger: such a loop is not started again until then.
func (h *Hub) Denied(key string) (int, bool) {
	h.denied.mu.Lock()
	defer h.denied.mu.Unlock()
	d, ok := h.denied.m[key]
	if !ok || h.cfg.Now().After(d.until) {
		return 0, false
	}
	return d.status, true
}
