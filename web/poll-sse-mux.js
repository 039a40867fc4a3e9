// poll-sse-mux.js: an optional part of the poll-sse client. pollMux reads several
// poll_sse routes from one poll_sse_mux stream, over one connection, and keeps a live
// document of each, with the core's API. Events named `<name>.<event>` go to the
// stream's document; the composite id resumes every stream at once; a stream the server
// refused reports connection `refused`, and is not retried.
import { pollSSE } from './poll-sse.js';

// pollMux opens url?stream=<name>… and returns the live document of each name.
export function pollMux(url, names, options = {}) {
  const ES = options.EventSource || globalThis.EventSource;
  const views = {}; // the transport of each stream's document
  const queued = {}; // events of a stream whose document is reconnecting
  let es, // the connection
    last = ''; // the composite id last received

  // send passes an event to the stream's document, or keeps it until it is back.
  const send = (name, type, e) => (views[name] ? views[name].emit(type, e) : (queued[name] ||= []).push([type, e]));

  // open opens the connection, resuming from last, with the part of stream reset, if
  // any, emptied: that stream starts over with a snapshot.
  const open = (format, reset) => {
    es?.close();
    const u = new URL(url, globalThis.location);
    const q = u.searchParams;
    names.forEach((n) => q.append('stream', n));
    q.set('format', format);
    const parts = last.split('.');
    if (reset) parts[names.indexOf(reset)] = '';
    if (last) q.set('last_event_id', parts.join('.'));
    const src = (es = new ES(u.href, options));
    const on = (type, fn) => src.addEventListener(type, (e) => src == es && fn(e));
    for (const n of names)
      for (const t of ['snapshot', 'patch', 'upstream'])
        on(`${n}.${t}`, (e) => {
          if (t != 'upstream') last = e.lastEventId;
          send(n, t, { data: e.data, lastEventId: e.lastEventId });
        });
    on('refused', (e) => send(JSON.parse(e.data).stream, 'error', { connection: 'refused' }));
    for (const t of ['open', 'error']) on(t, () => Object.values(views).forEach((v) => v.emit(t, {})));
  };

  class View {
    l = {};
    constructor(u) {
      const q = new URL(u).searchParams;
      const n = (this.n = q.get('stream'));
      views[n] = this;
      // a document that starts over (after a patch that did not apply) needs a snapshot
      const reset = !q.get('last_event_id') && last.split('.')[names.indexOf(n)] && n;
      if (!es || es.readyState == 2 || reset) open(q.get('format'), reset);
      queueMicrotask(() => {
        if (es.readyState == 1) this.emit('open', {});
        (queued[n] || []).forEach(([t, e]) => this.emit(t, e));
        delete queued[n];
      });
    }
    get readyState() {
      return this.x ? 2 : es.readyState;
    }
    addEventListener(type, fn) {
      (this.l[type] ||= []).push(fn);
    }
    emit(type, e) {
      if (e.connection) this.x = 1;
      (this.l[type] || []).forEach((fn) => fn(e));
    }
    close() {
      if (views[this.n] == this) delete views[this.n];
      if (!Object.keys(views).length) es.close();
    }
  }

  const docs = {};
  for (const n of names) {
    const u = new URL(url, globalThis.location);
    u.searchParams.set('stream', n);
    docs[n] = pollSSE(u.href, { ...options, EventSource: View });
  }
  return docs;
}
