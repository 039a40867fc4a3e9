// poll-sse-fetch.js: an optional part of the poll-sse client. FetchEventSource reads an
// event stream with fetch and a streaming parser, so that it can send headers such as
// Authorization, which EventSource cannot; pollSSE here uses it. The version held goes
// in the Last-Event-ID header. A stream that ends or fails is closed, and the core
// reconnects with its backoff, resuming; a 401 or 403 ends it with connection
// `unauthorized`, which is not retried: the page acts, with new headers, by opening anew.
import { pollSSE as core } from './poll-sse.js';

// request fetches url for transport t with t's options' headers and the fields given;
// on 401 or 403 it ends t as unauthorized and returns nothing.
export async function request(t, url, fields) {
  const h = new Headers(t.o.headers);
  for (const k in fields) fields[k] && h.set(k, fields[k]);
  const res = await fetch(url, {
    headers: h,
    signal: t.a.signal,
    credentials: t.o.withCredentials ? 'include' : void 0,
  });
  if (res.status != 401 && res.status != 403) return res;
  t.end('unauthorized');
}

// Emitter is the EventSource-like face of a transport: listeners, and readyState 0
// (connecting), 1 (open) or 2 (closed). Its fields: u, the URL; o, the options; id, the
// version held; a, the AbortController of its requests.
export class Emitter {
  l = {};
  readyState = 0;
  a = new AbortController();
  constructor(url, o = {}) {
    const q = (this.u = new URL(url)).searchParams; // made absolute by the core
    this.o = o;
    // the version held, taken out of the URL: it goes in a header
    this.id = q.get('last_event_id') || '';
    q.delete('last_event_id');
  }
  addEventListener(type, fn) {
    (this.l[type] ||= []).push(fn);
  }
  emit(type, e = {}) {
    for (const fn of this.l[type] || []) fn(e);
  }
  close() {
    this.readyState = 2;
    this.a.abort();
  }
  // end closes for good, in a state of its own, such as unauthorized, if any: the core
  // retries a plain end with its backoff.
  end(connection) {
    this.close();
    this.emit('error', { connection });
  }
}

export class FetchEventSource extends Emitter {
  constructor(url, o) {
    super(url, o);
    this.connect();
  }

  // connect reads the stream, parsing it as the HTML standard says, and dispatches
  // each event.
  async connect() {
    try {
      const res = await request(this, this.u, { Accept: 'text/event-stream', 'Last-Event-ID': this.id });
      // a body of another type finds no event, and ends
      if (!res?.ok) return;
      this.readyState = 1;
      this.emit('open');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '',
        data = '',
        type = '',
        id = this.id,
        cr;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.emit('progress');
        // a line ends at CRLF, LF or CR: after a CR that ended a chunk, an LF is skipped
        const text = buf + (cr && value[0] == '\n' ? value.slice(1) : value);
        cr = text.endsWith('\r');
        const lines = text.split(/\r\n?|\n/);
        buf = lines.pop();
        for (const line of lines) {
          const [, k, v = ''] = /^([^:]*)(?:: ?(.*))?$/s.exec(line);
          if (!line) {
            this.id = id;
            if (data) this.emit(type || 'message', { data: data.slice(0, -1), lastEventId: id });
            data = type = '';
          } else if (k == 'data') data += v + '\n';
          else if (k == 'event') type = v;
          else if (k == 'id' && !v.includes('\0')) id = v;
        }
      }
    } catch {
    } finally {
      this.a.signal.aborted || this.end();
    }
  }
}

// pollSSE is the core's, reading the stream with FetchEventSource unless options name
// another EventSource.
export const pollSSE = (url, options) => core(url, { EventSource: FetchEventSource, ...options });
