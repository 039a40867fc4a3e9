package caddymodule

import (
	"mime"
	"strings"
)

// mediaRange returns the media type of one range of an Accept header, lower-cased, and
// whether the client accepts it; ok is false when the range does not parse. A plain
// `type/subtype`, as an EventSource sends, is read without mime.ParseMediaType, which
// builds a parameter map for every request; anything else is left to it.
func mediaRange(rng string) (mt string, accepted, ok bool) {
	rng = strings.TrimSpace(rng)
	if plainMediaType(rng) {
		return strings.ToLower(rng), true, true
	}
	mt, params, err := mime.ParseMediaType(rng)
	if err != nil {
		return "", false, false
	}
	return mt, params["q"] != "0" && params["q"] != "0.0", true
}

// plainMediaType reports whether s is a type, a slash and a subtype, both non-empty
// tokens (RFC 9110), with no parameter.
func plainMediaType(s string) bool {
	typ, sub, found := strings.Cut(s, "/")
	return found && isToken(typ) && isToken(sub)
}

// isToken reports whether s is a non-empty token: visible ASCII but for the separators.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

// tokenChar holds the bytes of a token.
var tokenChar = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?=`, c)
	}
	return t
}()
