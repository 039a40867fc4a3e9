// The optional transports of the browser client over a fake fetch: FetchEventSource
// (headers, a streaming parser, resume with Last-Event-ID, unauthorized) and
// AutoEventSource (the fall back to long-poll and the return to the stream).
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pollSSE } from '../../web/poll-sse-fetch.js';
import { pollSSE as pollAuto } from '../../web/poll-sse-longpoll.js';
import { applyPatch } from '../../web/poll-sse.js';

const url = 'http://demo.test/events?room=1';
const realFetch = globalThis.fetch;
afterEach(() => (globalThis.fetch = realFetch));

// fakeFetch records each request and answers it with the next of answers: a function of
// the request, returning a Response.
function fakeFetch(answer) {
  const requests = [];
  globalThis.fetch = async (u, init) => {
    const req = { url: String(u), headers: Object.fromEntries(new Headers(init.headers)), signal: init.signal };
    requests.push(req);
    return answer(req, requests.length);
  };
  return requests;
}

// streamOf returns an event-stream Response whose body is chunks, then stays open until
// aborted when hold is set.
function streamOf(chunks, signal, hold = false) {
  const body = new ReadableStream({
    async start(c) {
      for (const ch of chunks) c.enqueue(new TextEncoder().encode(ch));
      if (!hold) return c.close();
      signal.addEventListener('abort', () => c.error(new DOMException('aborted', 'AbortError')));
    },
  });
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } });
}

const until = async (cond, what, ms = 3000) => {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

// events encodes versions as an event stream with the line ending eol, comments and
// retry fields among them.
function encode(events, eol) {
  let s = `retry: 3000${eol}:${eol}`;
  for (const e of events) s += `event: ${e.type}${eol}id: ${e.id}${eol}data:${e.data}${eol}: c${eol}${eol}`;
  return s;
}

test('the parser gives every event, however the stream is cut and its lines end', async () => {
  let doc = { n: 0, list: [] };
  const events = [{ type: 'snapshot', id: 'v0', data: JSON.stringify(doc) }];
  for (let i = 1; i <= 30; i++) {
    const patch = [{ op: 'replace', path: '/n', value: i }, { op: 'add', path: '/list/-', value: `x:${i}\u00e9` }];
    doc = applyPatch(doc, patch);
    events.push({ type: 'patch', id: `v${i}`, data: JSON.stringify(patch) });
  }
  for (const eol of ['\n', '\r\n', '\r']) {
    const text = encode(events, eol);
    const bytes = new TextEncoder().encode(text);
    for (const size of [1, 2, 3, 7, 64, bytes.length]) {
      const chunks = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(new TextDecoder().decode(bytes.slice(i, i + size), { stream: false }));
      // chunks cut inside a multi-byte character are given as bytes
      const raw = [];
      for (let i = 0; i < bytes.length; i += size) raw.push(bytes.slice(i, i + size));
      fakeFetch((req) => new Response(new ReadableStream({ start(c) { raw.forEach((b) => c.enqueue(b)); } }), { headers: { 'Content-Type': 'text/event-stream' } }));
      const live = pollSSE(url);
      await until(() => live.version === 'v30', `v30 with eol ${JSON.stringify(eol)} and chunks of ${size}`);
      assert.deepStrictEqual(live.document, doc);
      live.close();
    }
  }
});

test('headers go in the request, the version held in Last-Event-ID, never in the URL', async () => {
  const token = 'Bearer s3cr3t';
  let n = 0;
  const requests = fakeFetch((req) => {
    n++;
    if (n == 1) return streamOf([encode([{ type: 'snapshot', id: 'v1', data: '{"a":1}' }], '\n')], req.signal);
    return streamOf([encode([{ type: 'patch', id: 'v2', data: '[{"op":"replace","path":"/a","value":2}]' }], '\n')], req.signal, true);
  });
  const statuses = [];
  const live = pollSSE(url, { headers: { Authorization: token } });
  live.on('status', (s) => statuses.push(s.connection));
  await until(() => live.version === 'v2', 'the resumed patch', 5000);
  assert.deepStrictEqual(live.document, { a: 2 });
  assert.equal(requests.length, 2);
  for (const r of requests) {
    assert.equal(r.headers.authorization, token);
    assert.equal(r.headers.accept, 'text/event-stream');
    assert.ok(!r.url.includes('s3cr3t') && !r.url.includes('last_event_id'), r.url);
  }
  assert.equal(requests[0].headers['last-event-id'], undefined);
  assert.equal(requests[1].headers['last-event-id'], 'v1');
  assert.deepStrictEqual(statuses, ['open', 'closed', 'connecting', 'open']);
  live.close();
});

test('401 and 403 end as unauthorized, and are not retried', async () => {
  for (const status of [401, 403]) {
    const requests = fakeFetch(() => new Response('no', { status }));
    const live = pollSSE(url, { headers: { Authorization: 'Bearer old' } });
    await until(() => live.status.connection === 'unauthorized', 'unauthorized');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(requests.length, 1, 'an unauthorized stream was retried');
    live.close();
  }
});

test('auto: a silent stream falls back to long-poll, then tries the stream again', async () => {
  const doc1 = { a: 1, b: [1] };
  const patch = [{ op: 'add', path: '/b/-', value: 2 }];
  const requests = fakeFetch((req, n) => {
    if (req.headers.accept === 'text/event-stream') return streamOf([], req.signal, true); // buffered: nothing arrives
    const inm = req.headers['if-none-match'];
    if (!inm) return new Response(JSON.stringify(doc1), { headers: { 'Content-Type': 'application/json', ETag: '"v1"' } });
    if (inm === '"v1"') return new Response(JSON.stringify(patch), { headers: { 'Content-Type': 'application/json-patch+json', ETag: '"v2"' } });
    return new Promise((r) => setTimeout(() => r(new Response(null, { status: 304, headers: { ETag: inm } })), 20));
  });
  const live = pollAuto(url, { fallback: 'auto', fallbackAfter: 50, streamAgainAfter: 400 });
  await until(() => live.version === 'v2', 'the long-polled patch');
  assert.deepStrictEqual(live.document, { a: 1, b: [1, 2] });
  assert.equal(live.status.connection, 'open');
  const polls = requests.filter((r) => r.headers.accept !== 'text/event-stream');
  assert.equal(polls[0].headers.accept, 'application/json-patch+json');
  assert.equal(polls[0].headers.prefer, 'wait=30');
  assert.equal(polls[1].headers['if-none-match'], '"v1"');
  await until(() => requests.filter((r) => r.headers.accept === 'text/event-stream').length >= 2, 'the stream tried again', 3000);
  const again = requests.filter((r) => r.headers.accept === 'text/event-stream')[1];
  assert.equal(again.headers['last-event-id'], 'v2', 'the stream resumes from the long-polled version');
  live.close();
});
