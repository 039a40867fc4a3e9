package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// longPoller follows a route with conditional, held JSON GETs, as a client that cannot
// read an event stream does, applying each patch answer with an independent
// implementation.
type longPoller struct {
	client *http.Client
	url    string
	accept string // a patch media type, or application/json
	wait   int    // seconds, for Prefer: wait

	doc     []byte
	etag    string
	patches int // answers that were patches
	status  []int
}

// poll makes one long-poll request and applies its answer.
func (p *longPoller) poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", p.accept)
	req.Header.Set("Prefer", fmt.Sprintf("wait=%d", p.wait))
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	p.status = append(p.status, resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusOK:
	default:
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if err := p.apply(resp.Header.Get("Content-Type"), body); err != nil {
		return err
	}
	p.etag = resp.Header.Get("ETag")
	return nil
}

// apply takes body, of media type ctype, into the document held.
func (p *longPoller) apply(ctype string, body []byte) error {
	var err error
	switch ctype {
	case "application/json":
		p.doc = body
		return nil
	case "application/merge-patch+json":
		p.doc, err = jsonpatch.MergePatch(p.doc, body)
	case "application/json-patch+json":
		var patch jsonpatch.Patch
		if patch, err = jsonpatch.DecodePatch(body); err == nil {
			p.doc, err = patch.Apply(p.doc)
		}
	default:
		return fmt.Errorf("unexpected Content-Type %q", ctype)
	}
	p.patches++
	return err
}

// rowsDocument is the i-th of a sequence of documents where each change touches one row
// of many, so a patch is much smaller than the document.
func rowsDocument(i int) map[string]any {
	rows := map[string]any{}
	for r := range 40 {
		v := r
		if r == i%40 {
			v = 1000 + i
		}
		rows[fmt.Sprintf("r%d", r)] = map[string]any{"v": v, "name": fmt.Sprintf("row %d", r)}
	}
	return map[string]any{"rev": i, "rows": rows}
}

// TestLongPollSharesLoop: 200 long-pollers, half asking for JSON Patch answers and half
// for merge patches, follow 20 changes: every one ends with the upstream's document,
// mostly through patches, and the upstream still gets about one request per interval.
func TestLongPollSharesLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s load test")
	}
	t.Parallel()
	const (
		pollers  = 200
		changes  = 20
		interval = 100 * time.Millisecond
	)
	u := newUpstream(t, rowsDocument(0))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms"))
	tr := &http.Transport{MaxIdleConnsPerHost: pollers, MaxConnsPerHost: pollers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}

	start := time.Now()
	ps := make([]*longPoller, pollers)
	for i := range ps {
		ps[i] = &longPoller{client: client, url: caddy.url(""), accept: "application/json-patch+json", wait: 10}
		if i%2 == 1 {
			ps[i].accept = "application/merge-patch+json"
		}
	}
	var final []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= changes; i++ {
			time.Sleep(3 * interval)
			final = u.set(t, rowsDocument(i))
		}
	}()
	errs := followAll(ps, done, func() []byte { return u.document() }, 15*time.Second)
	elapsed := time.Since(start)
	<-done
	for i, err := range errs {
		if err != nil {
			t.Fatalf("long-poller %d: %v", i, err)
		}
	}
	for i, p := range ps {
		if !jsonEqual(p.doc, final) {
			t.Fatalf("long-poller %d holds %s, want %s", i, p.doc, final)
		}
		if p.patches < changes/2 {
			t.Errorf("long-poller %d: %d of its answers were patches, want most of %d", i, p.patches, changes)
		}
	}
	n := u.countBetween(start, start.Add(elapsed))
	perInterval := float64(elapsed) / float64(interval)
	t.Logf("%d long-pollers, %v: %d upstream requests (%.1f intervals)", pollers, elapsed.Round(time.Millisecond), n, perInterval)
	if float64(n) > perInterval+3 {
		t.Errorf("%d upstream requests in %.1f intervals: want about one per interval", n, perInterval)
	}
}

// followAll runs each long-poller until the changes are done and it holds the latest
// document, or the bound passes, and returns their errors.
func followAll(ps []*longPoller, done <-chan struct{}, latest func() []byte, bound time.Duration) []error {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			for {
				select {
				case <-done:
					if jsonEqual(p.doc, latest()) {
						return
					}
				default:
				}
				if err := p.poll(ctx); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// TestLongPollDeadline: with nothing new, a long-poll is held for its wait and answered
// 304 with the preference applied; a wait over the cap is capped; an unknown version gets
// the document at once, whatever patch type it accepts; a version that changed gets the
// patch from it.
func TestLongPollDeadline(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, rowsDocument(0))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms"))
	p := &longPoller{client: http.DefaultClient, url: caddy.url(""), accept: "application/json", wait: 1}
	ctx := context.Background()
	if err := p.poll(ctx); err != nil || !jsonEqual(p.doc, u.document()) {
		t.Fatalf("first poll: %v, doc %s", err, p.doc)
	}
	resp := longPollRaw(t, caddy.url(""), p.etag, "application/json", "wait=1")
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("Preference-Applied") != "wait=1" || resp.Header.Get("ETag") != p.etag {
		t.Fatalf("held poll: %d %v, want 304 with wait=1 applied", resp.StatusCode, resp.Header)
	}
	if took := resp.took; took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("held poll answered after %v, want about 1 s", took)
	}
	resp = longPollRaw(t, caddy.url(""), `"unknown"`, "application/json-patch+json", "wait=600")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !jsonEqual(resp.body, u.document()) {
		t.Fatalf("unknown version: %d %q %s, want the document", resp.StatusCode, resp.Header.Get("Content-Type"), resp.body)
	}
	if got := resp.Header.Get("Preference-Applied"); got != "wait=60" {
		t.Errorf("Preference-Applied %q for wait=600, want the cap wait=60", got)
	}
	held := p.etag
	want := u.set(t, rowsDocument(1))
	resp = longPollRaw(t, caddy.url(""), held, "application/merge-patch+json", "wait=10")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/merge-patch+json" {
		t.Fatalf("changed version: %d %q, want a merge patch", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	got, err := jsonpatch.MergePatch(p.doc, resp.body)
	if err != nil || !jsonEqual(got, want) {
		t.Fatalf("merge patch %s gives %s (%v), want %s", resp.body, got, err, want)
	}
}

type rawAnswer struct {
	*http.Response
	body []byte
	took time.Duration
}

// longPollRaw makes one long-poll request with the given headers.
func longPollRaw(t *testing.T, url, etag, accept, prefer string) rawAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", etag)
	req.Header.Set("Accept", accept)
	req.Header.Set("Prefer", prefer)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawAnswer{Response: resp, body: []byte(strings.TrimSpace(string(body))), took: time.Since(start)}
}

// TestLongPollCountsWhileHeld: on a route whose max_subscribers is taken by a stream, a
// held long-poll is refused with 503 and Retry-After, while a JSON GET answered at once
// is still served from the cache.
func TestLongPollCountsWhileHeld(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, rowsDocument(0))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "max_subscribers 1"))
	c := dialSSE(t, caddy.url(""))
	c.waitFor(u.document(), 5*time.Second)
	first := longPollRaw(t, caddy.url(""), `"none"`, "application/json", "")
	if first.StatusCode != http.StatusOK {
		t.Fatalf("JSON GET on a full route: %d, want 200 from the cache", first.StatusCode)
	}
	held := longPollRaw(t, caddy.url(""), first.Header.Get("ETag"), "application/json", "wait=5")
	if held.StatusCode != http.StatusServiceUnavailable || held.Header.Get("Retry-After") == "" {
		t.Fatalf("long-poll on a full route: %d %v, want 503 with Retry-After", held.StatusCode, held.Header)
	}
	c.close()
	time.Sleep(200 * time.Millisecond)
	held = longPollRaw(t, caddy.url(""), first.Header.Get("ETag"), "application/json", "wait=1")
	if held.StatusCode != http.StatusNotModified {
		t.Fatalf("long-poll once the stream left: %d, want 304", held.StatusCode)
	}
}
