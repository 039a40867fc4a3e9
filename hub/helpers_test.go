package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// docSource publishes the documents sent on docs, and fails or recovers on request.
type docSource struct {
	docs chan string
	tr   *diff.Tracker
}

func newDocSource() *docSource { return &docSource{docs: make(chan string), tr: new(diff.Tracker)} }

func newTracker(t *testing.T, o diff.Options) *diff.Tracker {
	t.Helper()
	tr, err := diff.NewTracker(o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (s *docSource) Run(ctx context.Context, t *Topic) {
	tr := s.tr
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-s.docs:
			ch, changed, err := tr.Update([]byte(d))
			if err != nil {
				t.Fail(200, reasonNotJSON)
				continue
			}
			t.Recover()
			if changed {
				t.Publish(ch)
			}
		}
	}
}

// send hands doc to the source, failing the test if it is not taken in time.
func (s *docSource) send(t *testing.T, doc string) {
	t.Helper()
	select {
	case s.docs <- doc:
	case <-time.After(5 * time.Second):
		t.Fatal("source did not take the document")
	}
}

func subscribe(t *testing.T, h *Hub, src Source, lastID string) *client {
	t.Helper()
	return subscribeIn(t, h, src, lastID, JSONPatch)
}

func subscribeIn(t *testing.T, h *Hub, src Source, lastID string, f Format) *client {
	t.Helper()
	sub, err := h.Subscribe("k", func() Source { return src }, lastID, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &client{sub: sub, format: f}
}

// client reads a subscription as a browser would: it parses the frames and keeps the
// document by applying snapshots and patches (RFC 7386 merge patches in MergePatch).
type client struct {
	sub     *Subscription
	format  Format
	batches [][][]byte // the frames of each read, as shared by the hub
	doc     []byte
	id      string
	events  []sse.Message
	retry   time.Duration
}

// read takes one batch of frames, waiting at most d.
func (c *client) read(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	frames, err := c.sub.Next(ctx)
	if err != nil {
		return err
	}
	c.batches = append(c.batches, slices.Clone(frames))
	dec := sse.NewDecoder(bytes.NewReader(bytes.Join(frames, nil)))
	for {
		m, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := c.apply(m); err != nil {
			return err
		}
	}
	if r := dec.Retry(); r != 0 {
		c.retry = r
	}
	return nil
}

func (c *client) apply(m sse.Message) error {
	c.events = append(c.events, m)
	switch m.Type {
	case "snapshot":
		c.doc = []byte(m.Data)
	case "patch":
		doc, err := applyPatch(c.format, c.doc, []byte(m.Data))
		if err != nil {
			return fmt.Errorf("applying %s: %w", m.Data, err)
		}
		c.doc = doc
	case "upstream":
		return nil
	default:
		return fmt.Errorf("unexpected event %q", m.Type)
	}
	c.id = m.LastEventID
	return nil
}

// applyPatch applies the data of a patch event in format f to doc, with the reference
// appliers of difftest, which take documents of any kind. A patch that is not of its
// format is an error: an RFC 6902 array in json_patch, an RFC 7386 object in merge_patch.
func applyPatch(f Format, doc, patch []byte) ([]byte, error) {
	if !patchFits(f, string(patch)) {
		return nil, fmt.Errorf("a patch event in format %v holds %s", f, patch)
	}
	if f == MergePatch {
		return difftest.ApplyMergePatch(doc, patch)
	}
	return difftest.ApplyPatch(doc, patch)
}

// waitDoc reads until the client holds want.
func (c *client) waitDoc(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !c.holds(want) {
		if err := c.read(time.Until(deadline)); err != nil {
			t.Fatalf("waiting for %s (have %s): %v", want, c.doc, err)
		}
	}
}

// holds reports whether the client's document is want.
func (c *client) holds(want string) bool {
	if c.doc == nil {
		return false
	}
	same, err := difftest.Equal(c.doc, []byte(want))
	return err == nil && same
}

// types lists the event types received since the index from.
func (c *client) types(from int) []string {
	var out []string
	for _, m := range c.events[from:] {
		out = append(out, m.Type)
	}
	return out
}

func newHub(t *testing.T, cfg Config) *Hub {
	t.Helper()
	h := New(cfg)
	t.Cleanup(h.Close)
	return h
}

func doc(i int) string { return fmt.Sprintf(`{"n":%d,"items":[%d,"x"],"fixed":{"a":"b"}}`, i, i) }

// acceptPair connects a client to ln and returns both ends; the client's end is closed
// when the test ends, the server's is the caller's.
func acceptPair(tb testing.TB, ln net.Listener) (server, client net.Conn) {
	tb.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	server, err = ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	return server, client
}
