// Command baseline is a plain net/http Server-Sent Events broadcaster, the straightforward
// design the benchmark compares poll_sse with: each subscriber is served by net/http's own
// goroutine, which writes the events queued on its buffered channel and flushes after each;
// a subscriber whose channel is full is dropped.
//
//	GET  /sub  opens a stream
//	POST /pub  broadcasts the request body as one event's data, with an incrementing id
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

// maxBody bounds a published event's data.
const maxBody = 1 << 20

// client is one subscriber: the events waiting for it, and a channel closed when it is
// dropped.
type client struct {
	events  chan []byte
	dropped chan struct{}
}

// broadcaster holds the subscribers and the last event id.
type broadcaster struct {
	mu      sync.Mutex
	clients map[*client]struct{}
	id      uint64
}

func newBroadcaster() *broadcaster {
	return &broadcaster{clients: make(map[*client]struct{})}
}

// add registers a new subscriber.
func (b *broadcaster) add() *client {
	c := &client{events: make(chan []byte, queueLen), dropped: make(chan struct{})}
	b.mu.Lock()
	b.clients[c] = struct{}{}
	b.mu.Unlock()
	return c
}

// remove unregisters c; it is safe to call after c was dropped.
func (b *broadcaster) remove(c *client) {
	b.mu.Lock()
	delete(b.clients, c)
	b.mu.Unlock()
}

// publish queues one event holding data for every subscriber and drops those whose queue
// is full.
func (b *broadcaster) publish(data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.id++
	frame := encode(b.id, data)
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

// serveSub streams events to one subscriber until it leaves or is dropped.
func (b *broadcaster) serveSub(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rc := http.NewResponseController(w)
	c := b.add()
	defer b.remove(c)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
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

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	flag.Parse()
	b := newBroadcaster()
	mux := http.NewServeMux()
	mux.HandleFunc("/sub", b.serveSub)
	mux.HandleFunc("/pub", b.servePub)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
