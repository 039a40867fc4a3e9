package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// MaxLongPollWait caps the wait a long-poller may ask for with `Prefer: wait=<seconds>`:
// below the idle timeouts of common proxies and load balancers, so a held request is not
// cut before it is answered.
const MaxLongPollWait = 60 * time.Second

// Media types of the patch answers a long-poller may accept.
const (
	mediaJSONPatch  = "application/json-patch+json"
	mediaMergePatch = "application/merge-patch+json"
)

// longPoll is what a JSON GET asks beyond the latest document: to be held until the
// version it names changes, and to be answered with the change rather than the document.
type longPoll struct {
	held    string        // the version the client holds, from If-None-Match; "" for none
	tags    []string      // every entity tag of If-None-Match, unquoted
	wait    time.Duration // from Prefer: wait, capped; 0 for an answer now
	asked   bool          // Prefer: wait was given
	format  hub.Format    // the patch format accepted
	patches bool          // a patch media type is accepted
}

// longPollOf reads the long-poll request in r, and reports whether there is one.
func longPollOf(r *http.Request) (longPoll, bool) {
	var lp longPoll
	lp.tags = entityTags(r.Header.Get("If-None-Match"))
	if len(lp.tags) > 0 {
		lp.held, _ = sse.ParseLastEventID(lp.tags[0])
	}
	lp.wait, lp.asked = preferWait(r.Header.Values("Prefer"))
	lp.format, lp.patches = patchFormat(r.Header.Values("Accept"))
	return lp, lp.patches || lp.asked && lp.held != ""
}

// entityTags returns the tags of an If-None-Match field, without quotes or weakness.
func entityTags(field string) []string {
	var tags []string
	for _, tag := range strings.Split(field, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' {
			tags = append(tags, tag[1:len(tag)-1])
		}
	}
	return tags
}

// preferWait returns the wait asked for by an RFC 7240 Prefer field, capped at
// MaxLongPollWait, and whether one was asked for.
func preferWait(fields []string) (time.Duration, bool) {
	for _, field := range fields {
		for _, pref := range strings.Split(field, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			secs, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(val), `"`), 10, 32)
			if err != nil {
				return 0, false
			}
			return min(time.Duration(secs)*time.Second, MaxLongPollWait), true
		}
	}
	return 0, false
}

// patchFormat returns the patch format the Accept fields ask for, the first one listed,
// and whether they ask for one.
func patchFormat(accept []string) (hub.Format, bool) {
	for _, field := range accept {
		for _, rng := range strings.Split(field, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(rng))
			if err != nil || params["q"] == "0" || params["q"] == "0.0" {
				continue
			}
			switch mt {
			case mediaJSONPatch:
				return hub.JSONPatch, true
			case mediaMergePatch:
				return hub.MergePatch, true
			}
		}
	}
	return hub.Snapshot, false
}

// serveLongPoll answers a long-poller: at once when the version it holds is not the
// current one, else when the next version comes or its wait is up. The answer is the
// document, or the patch from the version held when it asked for one and that version is
// in history, with the new version's ETag; 304 when nothing changed. While it waits it
// takes one of the route's max_subscribers slots, as a stream does.
func (h *Handler) serveLongPoll(w http.ResponseWriter, r *http.Request, lp loop, req longPoll) error {
	ctx, cancel := context.WithTimeout(r.Context(), req.wait+time.Duration(h.Timeout)+time.Second)
	defer cancel()
	defer context.AfterFunc(h.streams, cancel)()
	lim := hub.Limits{}
	if req.wait > 0 {
		lim = h.hub.limits
	}
	a, err := h.hub.Await(ctx, lp.key, lp.newSource, req.held, req.format, req.wait, lim)
	switch {
	case errors.Is(err, hub.ErrTooManyTopics), errors.Is(err, hub.ErrTooManySubscribers):
		return h.unavailable(w, err)
	case errors.Is(err, hub.ErrNoSource):
		return h.tooManyClientLoops(w, err)
	case err != nil:
		return h.unavailable(w, err)
	case a.Version == nil && a.Status.OK:
		return h.unavailable(w, errors.New("no document yet"))
	case a.Version == nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		return json.NewEncoder(w).Encode(a.Status)
	}
	return writeAnswer(w, r, req, a)
}

// writeAnswer writes a long-poller's answer a.
func writeAnswer(w http.ResponseWriter, r *http.Request, req longPoll, a hub.Answer) error {
	hdr := w.Header()
	hdr.Set("ETag", `"`+a.Version.ID+`"`)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Add("Vary", "Accept, Prefer")
	if req.asked {
		hdr.Set("Preference-Applied", "wait="+strconv.Itoa(int(req.wait/time.Second)))
	}
	for _, tag := range req.tags {
		if tag == a.Version.ID || tag == "*" {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
	}
	body, ctype := a.Version.JSON, "application/json"
	if a.Patch != nil {
		body, ctype = a.Patch, mediaJSONPatch
		if req.format == hub.MergePatch {
			ctype = mediaMergePatch
		}
	}
	hdr.Set("Content-Type", ctype)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(body)
	return err
}
