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

// A wrapper is what the stream needs to know of a kind of ResponseWriter wrapper.
type wrapper struct {
	// pass reports whether w hands every byte written through it on unchanged in its
	// present state, once the response header went out.
	pass func(w http.ResponseWriter) bool
	// headInert is true when it does nothing as the response header is written, so that
	// a stream behind it may write its header itself (see responsehead.go).
	headInert bool
}

// wrappers lists, by type, the wrappers that Caddy v2.11 puts between a route and
// net/http and that hand every byte written through them on unchanged.
var wrappers = map[typeKey]wrapper{
	// The plain wrapper, embedded by most of the others.
	{caddyhttpPkg, "ResponseWriterWrapper"}: {pass: always, headInert: true},
	// The recorder of the access log. It counts the bytes written through it: the
	// frames the hub writes after the hand-over are not in the logged size. It records
	// the status when the header is written. The same type buffers for other
	// middleware; a buffering one is not passed.
	{caddyhttpPkg, "responseRecorder"}: {pass: notBuffering},
	// The server's read and write idle timeouts (on by default). The hub sets its own
	// write deadline on the connection, and reads nothing but the client closing it.
	{caddyhttpPkg, "IdleTimeoutWriter"}:  {pass: always, headInert: true},
	{caddyhttpPkg, "readDeadlineWriter"}: {pass: always, headInert: true},
	// `header` with deferred operations: it changes the header only, when it is written.
	{caddyhttpPkg + "/headers", "responseWriterWrapper"}: {pass: always},
}

func always(http.ResponseWriter) bool { return true }

func notBuffering(w http.ResponseWriter) bool {
	rr, ok := w.(caddyhttp.ResponseRecorder)
	return ok && !rr.Buffered()
}

// netHTTPResponse is net/http's own HTTP/1.x ResponseWriter, the one that hijacks.
var netHTTPResponse = typeKey{"net/http", "response"}

// innermost unwraps w down to the writer that wraps no other, and returns it if every
// wrapper on the way is in wrappers and ok for it; otherwise nil.
func innermost(w http.ResponseWriter, ok func(wrapper, http.ResponseWriter) bool) http.ResponseWriter {
	for {
		u, isWrapper := w.(interface{ Unwrap() http.ResponseWriter })
		if !isWrapper {
			return w
		}
		kind, known := wrappers[typeName(w)]
		if !known || !ok(kind, w) {
			return nil
		}
		w = u.Unwrap()
	}
}

// hijacker returns net/http's own ResponseWriter beneath w if every wrapper between them
// is of a type in wrappers, or nil. With headerOut, after the response header went out,
// each wrapper must also pass bytes through in its present state.
func hijacker(w http.ResponseWriter, headerOut bool) http.Hijacker {
	inner := innermost(w, func(kind wrapper, w http.ResponseWriter) bool { return !headerOut || kind.pass(w) })
	if inner == nil || typeName(inner) != netHTTPResponse {
		return nil
	}
	hj, _ := inner.(http.Hijacker)
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
