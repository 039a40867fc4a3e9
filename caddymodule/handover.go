package caddymodule

import (
	"net/http"
	"reflect"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A stream over HTTP/1.x is handed to the hub's shared writers once the response header
// and the first frames went out through the route: the hub then writes to the raw
// connection, and no goroutine, buffer or request state is held for the stream. Frames
// written that way skip every ResponseWriter the route's middleware put in front of
// net/http's. So a connection is handed over only when each of those is known to pass
// what is written to the one beneath unchanged; behind any other (encode, intercept, a
// third-party module that buffers, counts or rewrites the response) the stream stays on
// the ResponseWriter path, written through the whole chain.

// caddyhttpPkg is the import path of Caddy's caddyhttp package.
var caddyhttpPkg = reflect.TypeFor[caddyhttp.ResponseWriterWrapper]().PkgPath()

// typeKey names a type: its import path and its name.
type typeKey struct{ pkg, name string }

// passThrough lists, by type, the wrappers that Caddy v2.11 puts between a route and
// net/http and that hand every byte written through them on unchanged. Each entry
// reports whether w does so now, once the response header went out.
var passThrough = map[typeKey]func(w http.ResponseWriter) bool{
	// The plain wrapper, embedded by most of the others.
	{caddyhttpPkg, "ResponseWriterWrapper"}: always,
	// The recorder of the access log. It counts the bytes written through it: the
	// frames the hub writes after the hand-over are not in the logged size. The same
	// type buffers for other middleware; a buffering one is not passed.
	{caddyhttpPkg, "responseRecorder"}: notBuffering,
	// The server's read and write idle timeouts (on by default). The hub sets its own
	// write deadline on the connection, and reads nothing but the client closing it.
	{caddyhttpPkg, "IdleTimeoutWriter"}:  always,
	{caddyhttpPkg, "readDeadlineWriter"}: always,
	// `header` with deferred operations: it changes the header only, when it is written.
	{caddyhttpPkg + "/headers", "responseWriterWrapper"}: always,
}

func always(http.ResponseWriter) bool { return true }

func notBuffering(w http.ResponseWriter) bool {
	rr, ok := w.(caddyhttp.ResponseRecorder)
	return ok && !rr.Buffered()
}

// netHTTPResponse is net/http's own HTTP/1.x ResponseWriter, the one that hijacks.
var netHTTPResponse = typeKey{"net/http", "response"}

// hijacker returns net/http's own ResponseWriter beneath w if every wrapper between them
// is of a type in passThrough, or nil. With headerOut, after the response header went
// out, each wrapper must also pass bytes through in its present state.
func hijacker(w http.ResponseWriter, headerOut bool) http.Hijacker {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		pass, known := passThrough[typeName(w)]
		if !known || headerOut && !pass(w) {
			return nil
		}
		w = u.Unwrap()
	}
	if typeName(w) != netHTTPResponse {
		return nil
	}
	hj, _ := w.(http.Hijacker)
	return hj
}

// typeName names the type of w, or of what it points to. It builds no string: the
// check runs on every stream request.
func typeName(w http.ResponseWriter) typeKey {
	t := reflect.TypeOf(w)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return typeKey{t.PkgPath(), t.Name()}
}
