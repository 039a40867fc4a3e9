// poll-sse-shared.js: an optional part of the poll-sse client. SharedEventSource gives
// the tabs of an origin one stream per URL: the tab that holds the Web Lock named after
// the URL reads the stream, with options.Leader (default: EventSource), and hands every
// event to the other tabs over a BroadcastChannel; a tab that joins gets the document
// from it. When that tab closes, the next one takes the lock and resumes from the
// version it holds: the server sends a patch, or nothing. pollSSE here uses it when
// options.shared is true.
import { pollSSE as core } from './poll-sse.js';

const types = ['open', 'error', 'snapshot', 'patch', 'upstream'];

export class SharedEventSource {
  l = {};
  readyState = 0;
  me = Math.random();
  a = new AbortController();

  // live is the core's document, which the leading tab hands to tabs that join.
  constructor(url, o = {}, live) {
    const u = new URL(url); // made absolute by the core
    u.searchParams.delete('last_event_id');
    const name = 'poll-sse ' + u;
    this.c = new BroadcastChannel(name);
    this.c.onmessage = (m) => this.got(m.data);
    this.c.postMessage({ hello: this.me });
    navigator.locks
      .request(name, { signal: this.a.signal }, () => this.lead(u, o, live))
      .catch(() => {});
  }

  addEventListener(type, fn) {
    (this.l[type] ||= []).push(fn);
  }

  // got takes an event, or a tab's hello, which the leading tab answers with the
  // document. A tab that joined applies no patch before it has a document.
  got(m) {
    const { live } = this;
    if (m.hello) {
      if (live?.version) this.c.postMessage({ to: m.hello, type: 'snapshot', data: JSON.stringify(live.document), lastEventId: live.version, readyState: 1 });
      return;
    }
    if ((m.to && m.to != this.me) || (m.type == 'patch' && !this.ok && !live)) return;
    if (m.type == 'snapshot') this.ok = 1;
    if (m.readyState == 1 && this.readyState != 1) (this.readyState = 1), this.emit('open');
    if (m.type != 'open') (this.readyState = m.readyState), this.emit(m.type, m);
  }

  emit(type, e) {
    for (const fn of this.l[type] || []) fn(e);
  }

  // lead reads the stream until the tab closes it, resuming from live's version.
  lead(u, o, live) {
    this.live = live;
    if (live.version) u.searchParams.set('last_event_id', live.version);
    const s = (this.s = new (o.Leader || EventSource)(u.href, o, live));
    for (const type of types)
      s.addEventListener(type, (e) => {
        const m = { type, data: e.data, lastEventId: e.lastEventId, readyState: s.readyState, connection: e.connection };
        this.got(m);
        this.c.postMessage(m);
      });
    return new Promise((r) => (this.r = r));
  }

  close() {
    this.readyState = 2;
    this.a.abort();
    this.s?.close();
    this.r?.();
    this.c.close();
  }
}

// pollSSE is the core's, with options.shared true sharing one stream among the tabs.
export const pollSSE = (url, options = {}) =>
  core(url, options.shared ? { EventSource: SharedEventSource, ...options } : options);
