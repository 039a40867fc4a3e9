package poller

import "net/http"

// remember keeps the validators of a response that passed all checks, for the next polls.
func (p *Poller) remember(h http.Header) {
	etag, lastModified := h.Get("ETag"), h.Get("Last-Modified")
	if !validValidator(etag) {
		etag = ""
	}
	if !validValidator(lastModified) {
		lastModified = ""
	}
	p.mu.Lock()
	p.etag, p.lastModified = etag, lastModified
	p.mu.Unlock()
}

// addValidators sets If-None-Match and If-Modified-Since from the remembered validators,
// unless h already sets them, and reports whether it set either.
func (p *Poller) addValidators(h http.Header) bool {
	p.mu.Lock()
	etag, lastModified := p.etag, p.lastModified
	p.mu.Unlock()
	added := false
	if _, ok := h["If-None-Match"]; !ok && etag != "" {
		h["If-None-Match"] = []string{etag}
		added = true
	}
	if _, ok := h["If-Modified-Since"]; !ok && lastModified != "" {
		h["If-Modified-Since"] = []string{lastModified}
		added = true
	}
	return added
}

// forget drops the remembered validators.
func (p *Poller) forget() {
	p.mu.Lock()
	p.etag, p.lastModified = "", ""
	p.mu.Unlock()
}

// validValidator reports whether v is short and fit to send back in a header field.
func validValidator(v string) bool {
	if len(v) > maxValidator {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
