package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// payload is the data of the event published i-th, which the server numbers i: the list
// the streams are checked against. Every third has a line break, which the wire form
// splits into two data lines.
func payload(i uint64) string {
	if i%3 == 0 {
		return fmt.Sprintf("event %d\nsecond line of %d", i, i)
	}
	return fmt.Sprintf("event %d", i)
}

// wireForms returns, indexed by id, the wire form of every event up to id last, as the
// Server-Sent Events format writes payload(id) with its id.
func wireForms(last uint64) [][]byte {
	forms := make([][]byte, last+1)
	for i := uint64(1); i <= last; i++ {
		var b bytes.Buffer
		fmt.Fprintf(&b, "id: %d\n", i)
		for _, line := range strings.Split(payload(i), "\n") {
			fmt.Fprintf(&b, "data: %s\n", line)
		}
		b.WriteString("\n")
		forms[i] = b.Bytes()
	}
	return forms
}

// start serves a fresh broadcaster on loopback; its streams end with the test.
func start(t *testing.T) (*broadcaster, *httptest.Server) {
	t.Helper()
	b := newBroadcaster()
	srv := httptest.NewServer(b.routes())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return b, srv
}

// deadline bounds the test's streams: a stream that misses an event fails instead of
// waiting for ever.
func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// publish posts payload(i) to /pub.
func publish(url string, i uint64) error {
	resp, err := http.Post(url+"/pub", "text/plain", strings.NewReader(payload(i)))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("publish %d: %s", i, resp.Status)
	}
	return nil
}

// publishAll posts payload(from) to payload(to) in order.
func publishAll(t *testing.T, url string, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := publish(url, i); err != nil {
			t.Fatal(err)
		}
	}
}

// stream is one subscriber's open response.
type stream struct {
	resp *http.Response
	r    *bufio.Reader
}

// subscribe opens /sub, with Last-Event-ID lastID unless it is empty, and returns once
// the response's headers are read: from then on the subscriber is registered.
func subscribe(ctx context.Context, url, lastID string) (*stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/sub", nil)
	if err != nil {
		return nil, err
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("GET /sub: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	return &stream{resp: resp, r: bufio.NewReader(resp.Body)}, nil
}

// expect reads the stream's next events and reports unless they are exactly the events
// after id after up to id last, in order, each in its wire form from forms; then it closes
// the stream. It reads the first event alone, so that a stream that starts elsewhere fails
// at once, then the others in one read.
func (s *stream) expect(forms [][]byte, after, last uint64) error {
	defer s.resp.Body.Close()
	if after >= last {
		return nil
	}
	if err := s.expectEvents(forms, after+1, after+1); err != nil {
		return err
	}
	return s.expectEvents(forms, after+2, last)
}

// expectEvents reads as many bytes as the events from id first to id last take, and
// reports the first of them that differs from its wire form.
func (s *stream) expectEvents(forms [][]byte, first, last uint64) error {
	want := forms[first : last+1]
	got := make([]byte, len(bytes.Join(want, nil)))
	n, err := io.ReadFull(s.r, got)
	for i, off := 0, 0; i < len(want) && off < n; i++ {
		end := min(off+len(want[i]), n)
		if !bytes.Equal(got[off:end], want[i][:end-off]) {
			return fmt.Errorf("event %d: got %q, want %q", first+uint64(i), got[off:end], want[i])
		}
		off += len(want[i])
	}
	if err != nil {
		return fmt.Errorf("events %d..%d: %d of %d bytes: %w", first, last, n, len(got), err)
	}
	return nil
}

// resume opens a stream from after and checks, in the background, that it brings exactly
// the events after it up to last.
func resume(ctx context.Context, t *testing.T, wg *sync.WaitGroup, url string, forms [][]byte, after, last uint64) {
	s, err := subscribe(ctx, url, strconv.FormatUint(after, 10))
	if err != nil {
		t.Errorf("Last-Event-ID %d: %v", after, err)
		return
	}
	wg.Go(func() {
		if err := s.expect(forms, after, last); err != nil {
			t.Errorf("Last-Event-ID %d: %v", after, err)
		}
	})
}

// TestResumeFromEveryIDInTheRing resumes, after the ring has wrapped, one subscriber from
// every id whose successors the ring holds, all at once, then publishes more: each gets the
// events it missed, then the live ones.
func TestResumeFromEveryIDInTheRing(t *testing.T) {
	t.Parallel()
	b, srv := start(t)
	ctx := deadline(t)
	const head, last = ringLen + ringLen/2, ringLen + ringLen/2 + 5
	forms := wireForms(last)
	for i := uint64(1); i <= head; i++ {
		b.publish([]byte(payload(i)))
	}
	var wg sync.WaitGroup
	for after := uint64(head - ringLen); after <= head; after++ {
		resume(ctx, t, &wg, srv.URL, forms, after, last)
	}
	publishAll(t, srv.URL, head+1, last)
	wg.Wait()
}

// TestResumeFromUnknownID resumes from ids whose successors are not all in the ring, and
// from ids that are no ids: those subscribers get the live events only.
func TestResumeFromUnknownID(t *testing.T) {
	t.Parallel()
	const wrapped = ringLen + 100
	cases := []struct {
		name   string
		head   uint64 // events published before the subscriber comes
		lastID string
		after  uint64 // the id after which it is to get every event
	}{
		{"one older than the ring", wrapped, strconv.Itoa(wrapped - ringLen - 1), wrapped},
		{"the oldest the ring serves", wrapped, strconv.Itoa(wrapped - ringLen), wrapped - ringLen},
		{"zero once the ring wrapped", wrapped, "0", wrapped},
		{"zero before the ring wrapped", 100, "0", 0},
		{"the newest", 100, "100", 100},
		{"newer than the newest", 100, "101", 100},
		{"far newer", 100, "18446744073709551615", 100},
		{"beyond uint64", 100, "18446744073709551616", 100},
		{"negative", 100, "-1", 100},
		{"not a number", 100, "abc", 100},
		{"trailing garbage", 100, "50x", 100},
		{"none", 100, "", 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, srv := start(t)
			for i := uint64(1); i <= tc.head; i++ {
				b.publish([]byte(payload(i)))
			}
			s, err := subscribe(deadline(t), srv.URL, tc.lastID)
			if err != nil {
				t.Fatal(err)
			}
			last := tc.head + 3
			publishAll(t, srv.URL, tc.head+1, last)
			if err := s.expect(wireForms(last), tc.after, last); err != nil {
				t.Errorf("Last-Event-ID %q: %v", tc.lastID, err)
			}
		})
	}
}

// TestResumeWhilePublishing resumes subscribers while events are published: in each
// round, subscribers resume from ids up to back behind the newest while perRound events
// are published, and the round ends once they are registered, so that the ring, which
// wraps during the test, still holds what each missed. Each gets every event after its
// id up to the last, once and in order.
func TestResumeWhilePublishing(t *testing.T) {
	t.Parallel()
	_, srv := start(t)
	ctx := deadline(t)
	const rounds, perRound, subsPerRound, back = 12, 100, 4, 300
	const last = rounds * perRound
	forms := wireForms(last)
	var head uint64
	var wg sync.WaitGroup
	for range rounds {
		var registered sync.WaitGroup
		for j := range subsPerRound {
			after := head - min(head, uint64(j*back/(subsPerRound-1)))
			registered.Go(func() { resume(ctx, t, &wg, srv.URL, forms, after, last) })
		}
		publishAll(t, srv.URL, head+1, head+perRound)
		head += perRound
		registered.Wait()
	}
	wg.Wait()
}

// TestAddIsAtomicWithPublish registers subscribers that resume from a few events behind
// the newest while events are published back to back: what each missed, then the first
// event queued to it, are the events after its id, with no gap and no duplicate.
func TestAddIsAtomicWithPublish(t *testing.T) {
	t.Parallel()
	const events = 100000
	forms := wireForms(events)
	b := newBroadcaster()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= events; i++ {
			b.publish([]byte(payload(i)))
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := checkAdd(b, forms, done); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// checkAdd registers one subscriber from a few events behind the newest and checks what
// it missed and the first event queued to it after.
func checkAdd(b *broadcaster, forms [][]byte, done <-chan struct{}) error {
	b.mu.Lock()
	after := b.id - min(b.id, 10)
	b.mu.Unlock()
	c, missed := b.add(strconv.FormatUint(after, 10))
	defer b.remove(c)
	if missed == nil {
		return nil // published past the ring meanwhile: a live-only subscriber
	}
	next := after + 1
	for _, frame := range missed {
		if !bytes.Equal(frame, forms[next]) {
			return fmt.Errorf("from %d: missed %q, want %q", after, frame, forms[next])
		}
		next++
	}
	var frame []byte
	select {
	case frame = <-c.events:
	case <-done:
		select {
		case frame = <-c.events:
		default:
			return nil // nothing was published after it
		}
	}
	if !bytes.Equal(frame, forms[next]) {
		return fmt.Errorf("from %d, after %d missed: queued %q, want %q", after, len(missed), frame, forms[next])
	}
	return nil
}
