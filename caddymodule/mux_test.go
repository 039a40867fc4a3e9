package caddymodule

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestSplitComposite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id string
		n        int
		want     []string
	}{
		{"all held", "a1.b_2.c-3", 3, []string{"a1", "b_2", "c-3"}},
		{"some without version", "a1..c3", 3, []string{"a1", "", "c3"}},
		{"wrong count", "a1.b2", 3, []string{"", "", ""}},
		{"none", "", 2, []string{"", ""}},
		{"unsafe part", "a1.b 2", 2, []string{"a1", ""}},
		{"overlong part", "a1." + strings.Repeat("x", 65), 2, []string{"a1", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := splitComposite(tt.id, tt.n); !slices.Equal(got, tt.want) {
				t.Errorf("splitComposite(%q, %d) = %q, want %q", tt.id, tt.n, got, tt.want)
			}
		})
	}
}

// TestMuxRewrite: each stream's frames are renamed and carry the composite of every
// stream's version; one retry field goes per connection; comments and upstream events
// go as they are, without an id.
func TestMuxRewrite(t *testing.T) {
	t.Parallel()
	c := newMuxConn([]string{"orders", "prices"}, []string{"", "p0"})
	var out []byte
	for _, step := range []struct {
		i     int
		frame string
	}{
		{0, "retry: 3000\n\n"},
		{0, "event: snapshot\nid: o1\ndata: {\"a\":1}\n\n"},
		{1, "retry: 3000\n\n"},
		{1, "event: patch\nid: p1\ndata: []\n\n"},
		{1, ":\n\n"},
		{0, "event: upstream\ndata: {\"ok\":false}\n\n"},
	} {
		out = c.rewrite(out, step.i, []byte(step.frame))
	}
	want := "retry: 3000\n\n" +
		"event: orders.snapshot\nid: o1.p0\ndata: {\"a\":1}\n\n" +
		"event: prices.patch\nid: o1.p1\ndata: []\n\n" +
		":\n\n" +
		"event: orders.upstream\ndata: {\"ok\":false}\n\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

// TestMuxRewriteAllocatesNothing checks that rewriting a frame, done for every event of
// every mux connection, allocates nothing once the connection's buffers have grown.
func TestMuxRewriteAllocatesNothing(t *testing.T) {
	c := newMuxConn([]string{"orders", "prices"}, []string{"o0", "p0"})
	frame := []byte("event: patch\nid: p1234567890123456789\ndata: []\n\n")
	buf := c.rewrite(nil, 1, frame)
	if n := testing.AllocsPerRun(100, func() { buf = c.rewrite(buf[:0], 1, frame) }); n != 0 {
		t.Errorf("rewriting a frame allocates %v times", n)
	}
}

func TestMuxCaddyfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, input string
		want        []string
		wantErr     bool
	}{
		{"streams", "poll_sse_mux {\n streams orders prices\n streams stock\n}", []string{"orders", "prices", "stock"}, false},
		{"no streams", "poll_sse_mux {\n}", nil, true},
		{"empty streams", "poll_sse_mux {\n streams\n}", nil, true},
		{"argument", "poll_sse_mux orders", nil, true},
		{"unknown", "poll_sse_mux {\n stream orders\n}", nil, true},
		{"unsafe name", "poll_sse_mux {\n streams a.b\n}", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m Mux
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				err = m.Validate()
			}
			if (err != nil) != tt.wantErr || !tt.wantErr && !slices.Equal(m.Streams, tt.want) {
				t.Errorf("got %q, %v; want %q, error %v", m.Streams, err, tt.want, tt.wantErr)
			}
		})
	}
}
