package caddymodule

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkStreamRequest measures one EventSource connecting to a route and being handed
// to the hub: net/http reads its request, the handler subscribes it, writes the header
// and its first frames (retry and the snapshot) and hands the connection over, where it
// stays until the end, as in a reconnect storm. It runs the handler behind net/http
// alone, without Caddy's route chain; the client is in the process too, so the
// allocations are both ends' per connection. Run it with a bounded count, such as
// -benchtime 3000x: each request holds two sockets.
func BenchmarkStreamRequest(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"n":1,"pad":"` + string(bytes.Repeat([]byte("x"), 1000)) + `"}`))
	}))
	defer up.Close()
	h, err := loadHandler(b, fmt.Sprintf(`{"upstream": %q, "interval": "1s"}`, up.URL))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Cleanup() }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeHTTP(w, r, nil)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	conns := make([]net.Conn, 0, b.N+1)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	buf := make([]byte, 4096)
	connect := func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")); err != nil {
			b.Fatal(err)
		}
		if err := readSnapshot(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	connect() // the loop runs and has its document
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		connect()
	}
}

// readSnapshot reads the response header and the first frames up to the end of the
// snapshot event.
func readSnapshot(c net.Conn, buf []byte) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, len(buf))
	var seen []byte
	for !bytes.Contains(seen, []byte("event: snapshot")) || !bytes.HasSuffix(seen, []byte("\n\n")) {
		n, err := br.Read(buf)
		if err != nil {
			return err
		}
		seen = append(seen, buf[:n]...)
	}
	return nil
}
