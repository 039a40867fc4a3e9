package poller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const lastModified = "Wed, 02 Jan 2030 03:04:05 GMT"

// validatorServer records requests; it answers 304 when a request's validator matches,
// else 200 with an ETag and a Last-Modified and the content type ct.
func validatorServer(t *testing.T, ct string) (*httptest.Server, *recorder) {
	t.Helper()
	rec := new(recorder)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		if r.Header.Get("If-None-Match") == `"v1"` || r.Header.Get("If-Modified-Since") == lastModified {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", ct)
		if r.URL.Query().Get("etag") != "no" {
			w.Header().Set("ETag", `"v1"`)
		}
		if r.URL.Query().Get("lm") != "no" {
			w.Header().Set("Last-Modified", lastModified)
		}
		_, _ = w.Write([]byte(`{"a":1}`))
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func TestConditionalRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, ct  string
		header           http.Header
		wantINM, wantIMS string // validators carried by the second request
		wantNotModified  bool
	}{
		{"ETag", "?lm=no", "application/json", nil, `"v1"`, "", true},
		{"Last-Modified", "?etag=no", "application/json", nil, "", lastModified, true},
		{"both", "", "application/json", nil, `"v1"`, lastModified, true},
		{"neither", "?etag=no&lm=no", "application/json", nil, "", "", false},
		{"configured If-None-Match wins", "?lm=no", "application/json", http.Header{"If-None-Match": {`"mine"`}}, `"mine"`, "", false},
		{"refused response not remembered", "", "text/html", nil, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, rec := validatorServer(t, tc.ct)
			p := newPoller(t, Config{URL: srv.URL + tc.query, Header: tc.header})
			first := p.Poll(context.Background())
			second := p.Poll(context.Background())
			reqs := rec.all()
			if len(reqs) != 2 {
				t.Fatalf("%d requests; want 2", len(reqs))
			}
			if h := reqs[0].header; h.Get("If-Modified-Since") != "" || (tc.header == nil && h.Get("If-None-Match") != "") {
				t.Fatalf("first request was conditional: %v", h)
			}
			if h := reqs[1].header; h.Get("If-None-Match") != tc.wantINM || h.Get("If-Modified-Since") != tc.wantIMS {
				t.Fatalf("second request carried %q, %q; want %q, %q", h.Get("If-None-Match"), h.Get("If-Modified-Since"), tc.wantINM, tc.wantIMS)
			}
			checkNotModified(t, first, second, tc.wantNotModified)
		})
	}
}

// checkNotModified checks the results of two polls: a full answer, then a 304 if want.
func checkNotModified(t *testing.T, first, second Result, want bool) {
	t.Helper()
	if !want {
		if second.NotModified || second.Status == http.StatusNotModified {
			t.Fatalf("second result %+v; want a full answer", second)
		}
		return
	}
	if first.Err != nil || first.NotModified || string(first.Body) != `{"a":1}` {
		t.Fatalf("first result %+v", first)
	}
	if !second.NotModified || second.Body != nil || second.Err != nil || second.Status != http.StatusNotModified {
		t.Fatalf("second result %+v; want NotModified, nil Body, status 304", second)
	}
}

func TestUnsolicitedNotModifiedIsAnError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	}))
	t.Cleanup(srv.Close)
	res := newPoller(t, Config{URL: srv.URL}).Poll(context.Background())
	var perr *Error
	if res.NotModified || !errors.As(res.Err, &perr) || perr.Reason != "upstream answered Not Modified" {
		t.Fatalf("result %+v; want an error", res)
	}
}

func TestRunStartsUnconditional(t *testing.T) {
	t.Parallel()
	srv, rec := validatorServer(t, "application/json")
	p := newPoller(t, Config{URL: srv.URL, Interval: time.Hour, Rand: constRand(0)})
	if res := p.Poll(context.Background()); res.Err != nil {
		t.Fatal(res.Err)
	}
	results := runLoop(t, p)
	if res := nextResult(t, results); res.NotModified || string(res.Body) != `{"a":1}` {
		t.Fatalf("Run's first result %+v; want the full document", res)
	}
	p.Poke()
	if res := nextResult(t, results); !res.NotModified {
		t.Fatalf("Run's second result %+v; want NotModified", res)
	}
	if reqs := rec.all(); len(reqs) != 3 || reqs[1].header.Get("If-None-Match") != "" || reqs[2].header.Get("If-None-Match") != `"v1"` {
		t.Fatalf("requests %+v", reqs)
	}
}
