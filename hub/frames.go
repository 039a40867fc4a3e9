package hub

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// Event names of the wire protocol.
var (
	nameSnapshot = sse.MustName("snapshot")
	namePatch    = sse.MustName("patch")
	nameUpstream = sse.MustName("upstream")
)

// snapshotPrefix starts every snapshot frame.
var snapshotPrefix = []byte("event: snapshot\n")

// heartbeat is the comment frame sent on idle streams.
var heartbeat, _ = sse.AppendComment(nil, "")

func encodeRetry(d time.Duration) []byte { return sse.AppendRetry(nil, d) }

func snapshotFrame(v *diff.Version) []byte { return versionFrame(nameSnapshot, v.ID, v.JSON) }

func patchFrame(id string, patch []byte) []byte { return versionFrame(namePatch, id, patch) }

// versionFrame encodes an event carrying a version. Version ids and compact JSON always
// make a valid event, so a failure here is a bug.
func versionFrame(name sse.Name, id string, data []byte) []byte {
	sid, err := sse.NewID(id)
	if err != nil {
		panic(fmt.Sprintf("version id %q: %v", id, err))
	}
	ev, err := sse.NewEvent(name, sid, data)
	if err != nil {
		panic(fmt.Sprintf("event %s %q: %v", name, id, err))
	}
	return ev.Encode()
}

// Status is the health of a topic's upstream as clients are told about it.
type Status struct {
	OK bool `json:"ok"`
	// Code is the HTTP status received, 0 when none arrived.
	Code int `json:"status,omitempty"`
	// Reason is short and safe to show to clients.
	Reason string `json:"error,omitempty"`
	// Since is when the current run of failures began.
	Since time.Time `json:"-"`
}

func statusFrame(s Status) []byte {
	type wire struct {
		Status
		Since string `json:"since,omitempty"`
	}
	w := wire{Status: s}
	if !s.OK {
		w.Since = s.Since.UTC().Format(time.RFC3339)
	}
	data, err := json.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("encoding status: %v", err))
	}
	ev, err := sse.NewEvent(nameUpstream, sse.ID{}, data)
	if err != nil {
		panic(fmt.Sprintf("status event: %v", err))
	}
	return ev.Encode()
}

// ExpiredFrame is the last event of a stream whose client's access ended at at: an
// `upstream` event with status 401, as when the upstream refuses forwarded credentials.
// A client that reconnects with the same credentials gets 401, and gives up.
func ExpiredFrame(at time.Time) []byte {
	return statusFrame(Status{Code: 401, Reason: "access expired", Since: at})
}
