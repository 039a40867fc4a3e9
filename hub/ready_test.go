package hub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/sse"
)

// TestReadyConverges reads a subscription with Ready alone, waiting on the channel it
// returns, through many changes, some faster than the reader: the client's document
// always converges to the topic's, as with Next, also after falling out of the log.
func TestReadyConverges(t *testing.T) {
	t.Parallel()
	h := New(Config{})
	defer h.Close()
	src := newDocSource()
	go offer(src, rowsDoc(0))
	c := subscribe(t, h, src, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := rowsDoc(0)
	for i := 1; i <= 600; i++ {
		if i%200 == 0 {
			want = rowsDoc(i)
			src.send(t, want)
			readUntil(ctx, t, c, want)
			continue
		}
		src.send(t, rowsDoc(i)) // the reader is behind: it may fall out of the log
	}
	want = rowsDoc(601)
	src.send(t, want)
	readUntil(ctx, t, c, want)
}

// readUntil reads c's subscription with Ready until its document is want.
func readUntil(ctx context.Context, t *testing.T, c *client, want string) {
	t.Helper()
	for !c.holds(want) {
		frames, wake, err := c.sub.Ready(ctx)
		if err != nil {
			t.Fatalf("ready: %v", err)
		}
		dec := sse.NewDecoder(bytes.NewReader(bytes.Join(frames, nil)))
		for {
			m, err := dec.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.apply(m); err != nil {
				t.Fatal(err)
			}
		}
		if wake != nil && len(frames) == 0 {
			select {
			case <-wake:
			case <-ctx.Done():
				t.Fatalf("document %s never came", want)
			}
		}
	}
}
