package sse

// MaxIDLen is the maximum length in bytes of a version token accepted by
// ParseLastEventID.
const MaxIDLen = 64

// ParseLastEventID validates a client's Last-Event-ID header or
// last_event_id query value as a version token: 1 to MaxIDLen bytes, each an
// ASCII letter, digit, '_', '.' or '-'. It returns the token and true if v is
// valid. For anything else, including empty, overlong, NUL-containing or
// non-UTF-8 values, it returns "" and false, and the caller treats the client
// as new.
func ParseLastEventID(v string) (id string, ok bool) {
	if len(v) == 0 || len(v) > MaxIDLen {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if !isTokenByte(v[i]) {
			return "", false
		}
	}
	return v, true
}

// isTokenByte reports whether c is allowed in a version token.
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '_', c == '.', c == '-':
		return true
	}
	return false
}
