// poll-sse-longpoll.js: an optional part of the poll-sse client, with poll-sse-fetch.js.
// AutoEventSource reads the event stream with FetchEventSource, and when no byte of it
// arrives within options.fallbackAfter ms (default 5000) of opening, as behind a proxy
// that buffers event streams, it long-polls instead: JSON GETs with If-None-Match and
// Prefer: wait, answered with the patch from the version held. After
// options.streamAgainAfter ms (default 60000) it tries the stream again, resuming.
// pollSSE here uses it when options.fallback is 'auto'.
import { pollSSE as core } from './poll-sse.js';
import { Emitter, FetchEventSource, request } from './poll-sse-fetch.js';

// The media type a long-poller accepts, by format: application/json-patch+json,
// application/merge-patch+json or application/json.
const accept = (format) => `application/${{ merge_patch: 'merge-patch+', snapshot: '' }[format] ?? 'json-patch+'}json`;

export class AutoEventSource extends Emitter {
  constructor(url, o) {
    super(url, o);
    this.stream();
  }

  close() {
    super.close();
    this.s?.close();
    clearTimeout(this.t);
  }

  // stream opens the event stream, passing its events on, and falls back to long-poll
  // when it stays silent.
  stream() {
    const u = new URL(this.u);
    u.searchParams.set('last_event_id', this.id);
    const s = (this.s = new FetchEventSource(u, this.o));
    this.t = setTimeout(() => this.poll(s), this.o.fallbackAfter || 5000);
    s.addEventListener('progress', () => clearTimeout(this.t));
    for (const type of ['open', 'error', 'snapshot', 'patch', 'upstream'])
      s.addEventListener(type, (e) => {
        this.readyState = s.readyState;
        this.id = e.lastEventId || this.id;
        this.emit(type, e);
      });
  }

  // poll long-polls in the place of stream s until streamAgainAfter has passed.
  async poll(s) {
    s.close();
    const until = Date.now() + (this.o.streamAgainAfter || 60000);
    const Accept = accept(this.u.searchParams.get('format'));
    let delay = 500;
    while (Date.now() < until) {
      try {
        const res = await request(this, this.u, { Accept, Prefer: 'wait=30', 'If-None-Match': this.id && `"${this.id}"` });
        if (!res) return;
        if (!res.ok && res.status != 304) throw 0;
        if (this.readyState != 1) (this.readyState = 1), this.emit('open');
        if (res.status == 200) {
          const data = await res.text();
          this.id = res.headers.get('etag').slice(1, -1);
          this.emit(/patch/.test(res.headers.get('content-type')) ? 'patch' : 'snapshot', { data, lastEventId: this.id });
        }
        delay = 500;
      } catch {
        if (this.readyState == 2) return;
        this.readyState = 0;
        this.emit('error');
        await new Promise((r) => (this.t = setTimeout(r, (delay = Math.min(delay * 2, 30000)))));
      }
    }
    this.readyState == 2 || this.stream();
  }
}

// pollSSE is the core's, with options.fallback 'auto' reading the stream through
// AutoEventSource.
export const pollSSE = (url, options = {}) =>
  core(url, options.fallback == 'auto' ? { EventSource: AutoEventSource, ...options } : options);
