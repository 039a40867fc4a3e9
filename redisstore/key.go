package redisstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/pollsse/caddy-poll-sse/poller"
)

// keyVersion starts every encoding LoopID hashes; a change of the encoding changes it.
const keyVersion = "poll_sse loop 1"

// LoopID returns the id of the loop polling with cfg: a SHA-256 digest of everything that
// defines what is polled and what is kept of it — method, URL, request body, every header
// sent (configured and forwarded values alike, as resolved) and the body limit — in a
// canonical, length-prefixed encoding. Nodes polling with the same settings get the same
// id, in any process; a difference in any of them gives another loop. No value can be
// read back from it. The schedule (interval, timeout) is left out: it says when to poll,
// not what, and nodes that differ in it share the loop at the lease holder's pace.
func LoopID(cfg poller.Config) string {
	h := sha256.New()
	field(h, keyVersion)
	method := strings.ToUpper(cfg.Method)
	if method == "" {
		method = http.MethodGet
	}
	field(h, method)
	field(h, cfg.URL)
	field(h, string(cfg.Body))
	headers(h, cfg.Header)
	maxBody := cfg.MaxBody
	if maxBody <= 0 {
		maxBody = poller.DefaultMaxBody
	}
	field(h, strconv.FormatInt(maxBody, 10))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// headers writes hdr by canonical name, in name order, each name's values in the order
// they are sent.
func headers(h hash.Hash, hdr http.Header) {
	byName := make(map[string][]string, len(hdr))
	for k, vs := range hdr {
		name := http.CanonicalHeaderKey(k)
		byName[name] = append(byName[name], vs...)
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	slices.Sort(names)
	count(h, len(names))
	for _, name := range names {
		field(h, name)
		count(h, len(byName[name]))
		for _, v := range byName[name] {
			field(h, v)
		}
	}
}

// field writes s prefixed with its length, so that no two sequences of fields encode
// alike.
func field(h hash.Hash, s string) {
	count(h, len(s))
	h.Write([]byte(s))
}

func count(h hash.Hash, n int) {
	h.Write(binary.AppendUvarint(nil, uint64(n)))
}

// reachedID returns the id of the loop with id reached by way of reach (Store.Reach).
func reachedID(id, reach string) string {
	h := sha256.New()
	field(h, keyVersion+" reach")
	field(h, id)
	field(h, reach)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
