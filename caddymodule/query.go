package caddymodule

import (
	"net/url"
	"strings"
)

// queryValue returns the first value of key in the raw query q, as url.ParseQuery would
// give it, or "" when there is none. Unlike ParseQuery it builds no map of every
// parameter: a stream request reads one or two of them, on the path of every reconnect.
func queryValue(q, key string) string {
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue // ParseQuery skips empty pairs and refuses those with a semicolon
		}
		k, v, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != key {
			continue
		}
		if v, err := url.QueryUnescape(v); err == nil {
			return v
		}
	}
	return ""
}
