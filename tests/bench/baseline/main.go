// Command baseline is a plain net/http Server-Sent Events broadcaster, the straightforward
// design the benchmark compares poll_sse with: each subscriber is served by net/http's own
// goroutine, which writes the events queued on its buffered channel and flushes after each;
// a subscriber whose channel is full is dropped.
//
//	GET  /sub  opens a stream
//	POST /pub  broadcasts the request body as one event's data, with an incrementing id
//
// The last 1024 events are kept in a ring. A GET /sub with a Last-Event-ID header (an id
// this server gave, or 0 while the ring still holds event 1) first gets every event after
// that id from the ring, written one by one as they were sent and flushed once, then the
// live events, with no gap and no duplicate: the subscriber is registered and the ring read
// under the lock that publish holds while it appends to the ring and queues to the
// subscribers. An id that is not a decimal integer, is newer than the newest event, or is
// older than the ring (more than 1024 events behind) resumes nothing: the subscriber gets
// the live events only.
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"sync"
)

// queueLen is how many events a subscriber may have waiting before it is dropped.
const queueLen = 1024

// ringLen is how many of the newest events are kept for subscribers that resume: as many as
// a subscriber may have waiting, so one dropped for a full queue that reconnects at once
// still finds what it missed. At maxBody an event, the ring holds at most 1 GiB.
const ringLen = 1024

// maxBody bounds a published event's data.
const maxBody = 1 << 20

// client is one subscriber: the events waiting for it, and a channel closed when it is
// dropped.
type client struct {
	events  chan []byte
	dropped chan struct{}
}

// broadcaster holds the subscribers, the last event id and the newest events.
type broadcaster struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	id      uint64
	ring    [ringLen][]byte // the wire form of event i at ring[i%ringLen], for the last ringLen ids
}

func newBroadcaster() *broadcaster {
	return &broadcaster{clients: make(map[*client]struct{})}
}

// add registers a new subscriber and returns, oldest first, the wire form of the events
// after lastID that it missed; every later event is queued to it.
func (b *broadcaster) add(lastID string) (*client, [][]byte) {
	c := &client{events: make(chan []byte, queueLen), dropped: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clients[c] = struct{}{}
	return c, b.since(lastID)
}

// since returns the events after lastID, oldest first, when lastID is an id the ring still
// holds every successor of; otherwise none. b.mu must be held.
func (b *broadcaster) since(lastID string) [][]byte {
	after, err := strconv.ParseUint(lastID, 10, 64)
	if err != nil || after > b.id || b.id-after > ringLen {
		return nil
	}
	missed := make([][]byte, 0, b.id-after)
	for id := after + 1; id <= b.id; id++ {
		missed = append(missed, b.ring[id%ringLen])
	}
	return missed
}

// remove unregisters c; it is safe to call after c was dropped.
func (b *broadcaster) remove(c *client) {
	b.mu.Lock()
	delete(b.clients, c)
	b.mu.Unlock()
}

// publish keeps one event holding data in the ring, queues it for every subscriber and
// drops those whose queue is full.
func (b *broadcaster) publish(data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.id++
	frame := encode(b.id, data)
	b.ring[b.id%ringLen] = frame
	for c := range b.clients {
		select {
		case c.events <- frame:
		default:
			delete(b.clients, c)
			close(c.dropped)
		}
	}
}

// encode builds the wire form of one event; line breaks in data start new data lines.
func encode(id uint64, data []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString("id: ")
	buf.WriteString(strconv.FormatUint(id, 10))
	buf.WriteByte('\n')
	for _, line := range bytes.Split(data, []byte("\n")) {
		buf.WriteString("data: ")
		buf.Write(bytes.TrimSuffix(line, []byte("\r")))
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// serveSub streams events to one subscriber, first those it missed after its
// Last-Event-ID, until it leaves or is dropped.
func (b *broadcaster) serveSub(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rc := http.NewResponseController(w)
	c, missed := b.add(r.Header.Get("Last-Event-ID"))
	defer b.remove(c)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	for _, frame := range missed {
		if _, err := w.Write(frame); err != nil {
			return
		}
	}
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case frame := <-c.events:
			if _, err := w.Write(frame); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		case <-c.dropped:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// servePub broadcasts the request body.
func (b *broadcaster) servePub(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.publish(data)
	w.WriteHeader(http.StatusNoContent)
}

// routes serves /sub and /pub.
func (b *broadcaster) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/sub", b.serveSub)
	mux.HandleFunc("/pub", b.servePub)
	return mux
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	flag.Parse()
	log.Fatal(http.ListenAndServe(*addr, newBroadcaster().routes()))
}
