package tests

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTP1StreamHandedOver checks a stream over HTTP/1.1 once the hub's shared writers
// serve it: the header the route set is there, the body is not chunked and ends with the
// connection, events keep flowing, and after the client leaves a new client of the same
// loop gets the current document.
func TestHTTP1StreamHandedOver(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	route := "route {\n\theader Access-Control-Allow-Origin *\n\t" + indent(pollSSE(u.url(), "interval 50ms")) + "\n}"
	caddy := startCaddy(t, route)

	c := dialSSE(t, caddy.url(""))
	checkStreamHeaders(t, c.resp)
	if got := c.resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin %q; the route's header is lost", got)
	}
	if len(c.resp.TransferEncoding) != 0 || !c.resp.Close {
		t.Errorf("Transfer-Encoding %v, Close %v; want a body that ends with the connection", c.resp.TransferEncoding, c.resp.Close)
	}
	if r := c.mustNext(5 * time.Second); r.Type != "snapshot" {
		t.Fatalf("first event %q, want snapshot", r.Type)
	}
	for rev := 1; rev <= 3; rev++ {
		got := c.waitFor(u.set(t, map[string]any{"rev": rev}), 5*time.Second)
		if len(got) != 1 || got[0].Type != "patch" {
			t.Fatalf("change %d: want one patch, got %s", rev, summarize(got))
		}
	}
	c.close()

	raw := rawStream(t, strings.TrimPrefix(caddy.url(""), "http://"))
	if !strings.Contains(raw, "event: snapshot\n") || !strings.Contains(raw, `"rev":3`) {
		t.Fatalf("a new client got %q; want the snapshot of rev 3", raw)
	}
}

// rawStream opens a stream over a plain connection and returns what arrives within a
// second, header included.
func rawStream(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("Accept", "text/event-stream")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	var b strings.Builder
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String()
		}
	}
}

// TestStreamHeadThroughEveryChain: a handed-over stream's response head is what the
// route made it, whichever way it goes out: written by the stream itself (no wrapper
// acts on the header), through net/http behind the access log (which records status 200
// for it), and behind `header` with a deferred field (which is in the head).
func TestStreamHeadThroughEveryChain(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	logFile := filepath.Join(t.TempDir(), "access.log")
	routes := map[string]string{
		"own head":   "header X-Route yes",
		"access log": "header X-Route yes\nlog {\n\toutput file " + logFile + "\n\tformat json\n}",
		"deferred":   "header X-Route yes\nheader {\n\tX-Deferred yes\n\tdefer\n}",
	}
	for name, extra := range routes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			caddy := startCaddy(t, extra+"\n"+pollSSE(u.url(), "interval 50ms"))
			c := dialSSE(t, caddy.url(""))
			checkStreamHeaders(t, c.resp)
			if c.resp.Header.Get("X-Route") != "yes" || c.resp.Header.Get("Server") != "Caddy" || c.resp.Header.Get("Date") == "" {
				t.Errorf("head %v; want X-Route, Server and Date", c.resp.Header)
			}
			if name == "deferred" && c.resp.Header.Get("X-Deferred") != "yes" {
				t.Errorf("head %v; want the deferred X-Deferred", c.resp.Header)
			}
			if len(c.resp.TransferEncoding) != 0 || !c.resp.Close || c.resp.Proto != "HTTP/1.1" {
				t.Errorf("%s, Transfer-Encoding %v, Close %v; want HTTP/1.1 ending with the connection", c.resp.Proto, c.resp.TransferEncoding, c.resp.Close)
			}
			if r := c.mustNext(5 * time.Second); r.Type != "snapshot" {
				t.Fatalf("first event %q, want snapshot", r.Type)
			}
			c.close()
			if name == "access log" {
				waitLogged(t, logFile, `"status":200`)
			}
		})
	}
}

// waitLogged waits until the file at path holds want.
func waitLogged(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access log holds %q; want %s", b, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
