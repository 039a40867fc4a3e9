package caddymodule

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// errBadValue reports a request value that would change the shape of the upstream path.
var errBadValue = errors.New("request value not allowed in the upstream path")

// upstreamTemplate is the upstream URL split into literal text and request placeholders.
// Scheme and host are fixed; placeholders may stand only in the path and the query, and
// each value is escaped for where it stands and inserted once, never expanded again.
type upstreamTemplate struct {
	parts []urlPart
}

type urlPart struct {
	text    string // literal text, or the placeholder's name without braces
	holder  bool
	inQuery bool
}

func parseUpstream(raw string) (upstreamTemplate, error) {
	base, _, _ := strings.Cut(raw, "?")
	u, err := url.Parse(strings.NewReplacer("{", "", "}", "").Replace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return upstreamTemplate{}, fmt.Errorf("upstream %q: want an absolute http or https URL", redactURL(raw))
	}
	_, rest, _ := strings.Cut(base, "://")
	authority, _, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(authority, "{}") {
		return upstreamTemplate{}, fmt.Errorf("upstream %q: placeholders are allowed in the path and query only", redactURL(raw))
	}
	return splitTemplate(raw, len(base))
}

// splitTemplate cuts raw into literals and placeholders; queryAt is where the query begins.
func splitTemplate(raw string, queryAt int) (upstreamTemplate, error) {
	var t upstreamTemplate
	for i := 0; i < len(raw); {
		open := strings.IndexByte(raw[i:], '{')
		if open < 0 {
			t.parts = append(t.parts, urlPart{text: raw[i:]})
			break
		}
		end := strings.IndexByte(raw[i+open:], '}')
		if end < 0 {
			return t, fmt.Errorf("upstream %q: unclosed placeholder", redactURL(raw))
		}
		if open > 0 {
			t.parts = append(t.parts, urlPart{text: raw[i : i+open]})
		}
		name := raw[i+open+1 : i+open+end]
		t.parts = append(t.parts, urlPart{text: name, holder: true, inQuery: i+open >= queryAt})
		i += open + end + 1
	}
	return t, nil
}

// dynamic reports whether the URL depends on the request.
func (t upstreamTemplate) dynamic() bool {
	for _, p := range t.parts {
		if p.holder {
			return true
		}
	}
	return false
}

// expand builds the URL for a request. Path values are path-escaped ("/" included) and may
// not be empty, "." or ".."; query values are query-escaped.
func (t upstreamTemplate) expand(repl *caddy.Replacer) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if !p.holder {
			b.WriteString(p.text)
			continue
		}
		v, _ := repl.GetString(p.text)
		if p.inQuery {
			b.WriteString(url.QueryEscape(v))
			continue
		}
		if v == "" || v == "." || v == ".." {
			return "", fmt.Errorf("%w: %q", errBadValue, v)
		}
		b.WriteString(url.PathEscape(v))
	}
	return b.String(), nil
}
