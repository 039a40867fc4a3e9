package caddymodule

import (
	"net/http"
	"sync/atomic"
	"time"
)

// A stream whose response header no wrapper of the route acts on is handed over before
// anything is written through net/http: its header is built here and goes out with the
// first frames in the hub's first write. net/http's own header writing would otherwise
// fill a fresh 4 KiB buffer per connection that the hand-over then drops, and cost a
// flush through every wrapper, in each of the thousands of requests of a reconnect storm.

// writesOwnHead reports whether a stream written through w, an HTTP/1.1 response that
// hijacker allows to be handed over, may write its response header itself: whether no
// wrapper of w acts on the header (see wrapper.headInert).
func writesOwnHead(w http.ResponseWriter, r *http.Request) bool {
	return r.ProtoAtLeast(1, 1) && innermost(w, func(kind wrapper, _ http.ResponseWriter) bool { return kind.headInert }) != nil
}

// headExcluded are the fields of the handler's header that the response head does not
// copy: the body is delimited by the connection's close, as net/http delimits it when a
// handler asks for no chunking.
var headExcluded = map[string]bool{"Transfer-Encoding": true, "Content-Length": true, "Connection": true}

// appendResponseHead appends to dst the head of a 200 response to an HTTP/1.1 request
// with the fields of hdr, as net/http writes it for a handler that set Transfer-Encoding
// identity: the status line, the fields in key order (invalid names dropped, line breaks
// in values made spaces), Date unless hdr has one, and Connection: close.
func appendResponseHead(dst []byte, hdr http.Header) []byte {
	dst = append(dst, "HTTP/1.1 200 OK\r\n"...)
	w := appendWriter{dst}
	_ = hdr.WriteSubset(&w, headExcluded) // an appendWriter never fails
	dst = w.b
	if _, ok := hdr["Date"]; !ok {
		dst = append(dst, "Date: "...)
		dst = append(dst, httpDate()...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "Connection: close\r\n\r\n"...)
}

// appendWriter appends what is written to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// dateLine is the Date value of one second.
type dateLine struct {
	sec   int64
	value string
}

var lastDate atomic.Pointer[dateLine]

// httpDate returns the current time as a Date field value, formatted once per second.
func httpDate() string {
	now := time.Now()
	if d := lastDate.Load(); d != nil && d.sec == now.Unix() {
		return d.value
	}
	d := &dateLine{sec: now.Unix(), value: now.UTC().Format(http.TimeFormat)}
	lastDate.Store(d)
	return d.value
}
