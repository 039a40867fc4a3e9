package tests

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/sse"
)

// muxAccessSite carries, on one mux, routes that each decide who sees what: `orders`
// filters rows by the X-User header, `parts` lets clients choose a part, `timed` ends
// with the X-Expires header, and `plain` is open to all.
type muxAccessSite struct {
	caddy          *caddyProc
	orders, prices *upstream
	owners, qty    []int
}

func startMuxAccessSite(t *testing.T) *muxAccessSite {
	t.Helper()
	s := &muxAccessSite{owners: make([]int, 40), qty: make([]int, 40)}
	for i := range s.owners {
		s.owners[i] = i % 4
	}
	s.orders = newUpstream(t, ordersDoc(s.owners, s.qty))
	s.prices = newUpstream(t, map[string]any{"prices": map[string]any{"ACME": 1, "INITECH": 2}, "secret": "internal"})
	route := func(name, url string, sub ...string) string {
		return fmt.Sprintf("handle /%s {\n%s\n}", name, indent(pollSSE(url, append([]string{"interval 100ms", "name " + name}, sub...)...)))
	}
	site := strings.Join([]string{
		route("orders", s.orders.url(), "filter /orders owner {http.request.header.X-User}", "array_key /orders id"),
		route("parts", s.prices.url(), "client_select /prices/*"),
		route("timed", s.prices.url(), "expires {http.request.header.X-Expires}", "select /prices"),
		route("plain", s.prices.url(), "select /prices"),
		"handle /mux {\n\tpoll_sse_mux {\n\t\tstreams orders parts timed plain\n\t}\n}",
	}, "\n")
	s.caddy = startCaddy(t, site)
	return s
}

// refusals returns the streams named in c's `refused` events, with their status.
func (c *muxClient) refusals() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, m := range c.all {
		if m.Type != "refused" {
			continue
		}
		var r struct {
			Stream string `json:"stream"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(m.Data), &r); err == nil {
			out[r.Stream] = r.Status
		}
	}
	return out
}

// messages returns c's events named typ, or all of them.
func (c *muxClient) messages(typ string) []sse.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sse.Message
	for _, m := range c.all {
		if typ == "" || m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

// TestMuxKeepsRouteAccess checks that a mux serves each route only as the route itself
// would: rows filtered by identity (a client without one gets the stream refused with
// 403, never the whole document), a part chosen with `select.<name>` from the route's
// allow-list (others refused with 400), and an expiry that ends the stream with an
// `upstream` event of status 401, after which the stream is refused with 401 and the
// others go on. Through 20 changes that move rows between users, each user's mux
// stream holds its own rows only.
func TestMuxKeepsRouteAccess(t *testing.T) {
	t.Parallel()
	s := startMuxAccessSite(t)
	url := func(q string) string { return s.caddy.url("/mux?" + q) }

	anon := dialMux(t, url("stream=orders&stream=plain"), "")
	anon.waitDocs(plainAt(1), []string{"plain"}, 10*time.Second)
	if got := anon.refusals(); got["orders"] != http.StatusForbidden {
		t.Fatalf("a mux client without identity: refusals %v, want orders refused with 403", got)
	}
	if d := anon.doc("orders"); d != nil {
		t.Fatalf("a mux client without identity received orders: %.300s", d)
	}

	users := make([]*muxClient, 4)
	for u := range users {
		users[u] = dialMux(t, url("stream=orders&stream=parts&select.parts=/prices/INITECH"), "", userHeader(u))
	}
	rng := rand.New(rand.NewPCG(21, 4))
	for step := range 20 {
		doc := ordersDoc(s.owners, s.qty)
		for u, c := range users {
			c.waitDocs(func(name string) []byte {
				if name == "parts" {
					return []byte(`2`)
				}
				return userView(t, doc, u)
			}, []string{"orders", "parts"}, 10*time.Second)
			for _, m := range c.messages("") {
				for _, mark := range viewMark.FindAllStringSubmatch(m.Data, -1) {
					if mark[1] != strconv.Itoa(u) {
						t.Fatalf("step %d: user %d received a row of user %s on the mux: %.300q", step, u, mark[1], m.Data)
					}
				}
			}
		}
		r := rng.IntN(len(s.owners))
		s.owners[r] = rng.IntN(len(users))
		s.qty[r]++
		s.orders.set(t, ordersDoc(s.owners, s.qty))
	}

	for q, want := range map[string]int{
		"stream=parts&stream=plain":                          http.StatusBadRequest,
		"stream=parts&stream=plain&select.parts=/secret":     http.StatusBadRequest,
		"stream=parts&stream=plain&select=/prices/ACME":      http.StatusBadRequest,
		"stream=timed&stream=plain":                          http.StatusUnauthorized,
		"stream=orders&stream=plain&select.orders=/orders/0": http.StatusForbidden,
	} {
		c := dialMux(t, url(q), "")
		c.waitDocs(plainAt(1), []string{"plain"}, 10*time.Second)
		refused := c.refusals()
		for name := range refused {
			if refused[name] != want {
				t.Errorf("%s: refusals %v, want status %d", q, refused, want)
			}
		}
		if len(refused) != 1 {
			t.Errorf("%s: refusals %v, want one", q, refused)
		}
		c.close()
	}
	checkMuxExpiry(t, s, url("stream=timed&stream=plain"))
}

// checkMuxExpiry opens a mux whose `timed` stream expires 2 s ahead: it gets its
// document, then at the expiry a `timed.upstream` event with status 401 before the
// connection ends; the client's reconnection with the same credentials has `timed`
// refused with 401 and `plain` resumed.
func checkMuxExpiry(t *testing.T, s *muxAccessSite, url string) {
	at := time.Now().Add(2 * time.Second).Truncate(time.Second)
	hdr := http.Header{"X-Expires": {strconv.FormatInt(at.Unix(), 10)}}
	c := dialMux(t, url, "", hdr)
	c.waitDocs(plainAt(1), []string{"timed", "plain"}, 5*time.Second)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the mux connection did not end at the expiry")
	}
	if d := time.Since(at); d < -100*time.Millisecond || d > 2*time.Second {
		t.Errorf("the mux connection ended %v after the expiry", d)
	}
	last := c.messages("timed.upstream")
	if len(last) == 0 || !strings.Contains(last[len(last)-1].Data, `"status":401`) {
		t.Fatalf("the expired stream's last events: %v, want timed.upstream with status 401", last)
	}
	_, lastID := c.snapshot()
	again := dialMux(t, url, lastID, hdr)
	s.prices.set(t, map[string]any{"prices": map[string]any{"ACME": 3, "INITECH": 2}, "secret": "internal"})
	again.mu.Lock()
	again.docs["plain"] = plainAt(1)("") // the resumed stream holds its document
	again.mu.Unlock()
	again.waitDocs(plainAt(3), []string{"plain"}, 5*time.Second)
	if got := again.refusals(); got["timed"] != http.StatusUnauthorized || len(got) != 1 {
		t.Fatalf("reconnecting after the expiry: refusals %v, want timed refused with 401", got)
	}
	if n := len(again.messages("plain.snapshot")); n != 0 {
		t.Errorf("plain was resumed with %d snapshots, want none", n)
	}
}

// plainAt is the document of the `plain` and `timed` streams while ACME is at acme.
func plainAt(acme int) func(string) []byte {
	return func(string) []byte { return fmt.Appendf(nil, `{"ACME":%d,"INITECH":2}`, acme) }
}

// TestMuxServesItsOwnServer runs two servers, each with a route named `orders` on an
// upstream of its own and a mux: each mux serves its own server's route, never the other
// one's. Two routes of one server with the same name and different upstreams are refused
// when the config loads.
func TestMuxServesItsOwnServer(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, map[string]any{"site": "a"})
	b := newUpstream(t, map[string]any{"site": "b"})
	other := freeAddr(t)
	site := func(u *upstream) string {
		return fmt.Sprintf("handle /orders {\n%s\n}\nhandle /mux {\n\tpoll_sse_mux {\n\t\tstreams orders\n\t}\n}",
			indent(pollSSE(u.url(), "interval 100ms", "name orders")))
	}
	c := startCaddyConfig(t, func(c *caddyProc) string {
		return caddyfileWith(c.adminAddr, c.siteAddr, "", site(a)) +
			fmt.Sprintf("\nhttp://%s {\n\tbind 127.0.0.1\n%s\n}\n", other, indent(site(b)))
	})
	for addr, u := range map[string]*upstream{c.siteAddr: a, other: b} {
		m := dialMux(t, "http://"+addr+"/mux?stream=orders", "")
		m.waitDocs(func(string) []byte { return u.document() }, []string{"orders"}, 10*time.Second)
		m.close()
	}

	file := filepath.Join(t.TempDir(), "Caddyfile")
	twice := fmt.Sprintf("handle /a {\n%s\n}\nhandle /b {\n%s\n}", indent(pollSSE(a.url(), "name orders")), indent(pollSSE(b.url(), "name orders")))
	if err := os.WriteFile(file, []byte(caddyfile(freeAddr(t), freeAddr(t), twice)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(caddyBin, "validate", "--config", file, "--adapter", "caddyfile").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `name \"orders\"`) {
		t.Errorf("caddy validate of two routes named orders on one server: %v\n%s", err, out)
	}
}
