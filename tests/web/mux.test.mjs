// pollMux of web/poll-sse-mux.js over a fake EventSource: events reach their stream's
// document, the composite id resumes them all, a refused stream stops alone, and a
// stream whose patch does not apply starts over while the others resume.
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { pollMux } from '../../web/poll-sse-mux.js';
import { FakeEventSource as ES } from './fake-event-source.mjs';

const url = 'http://demo.test/mux';

beforeEach(() => {
  ES.reset();
  mock.timers.enable({ apis: ['setTimeout'] });
});
afterEach(() => mock.timers.reset());

const tick = () => new Promise((r) => queueMicrotask(r));
const query = (u) => [...new URL(u).searchParams];

test('one connection carries every stream; each document follows its own events', async () => {
  const docs = pollMux(url, ['a', 'b'], { EventSource: ES });
  assert.equal(ES.instances.length, 1, 'one connection for all streams');
  const es = ES.last;
  assert.deepStrictEqual(query(es.url), [['stream', 'a'], ['stream', 'b'], ['format', 'json_patch']]);
  es.open();
  es.send('a.snapshot', { n: 1 }, 'a1.');
  es.send('b.snapshot', [1], 'a1.b1');
  es.send('a.patch', [{ op: 'replace', path: '/n', value: 2 }], 'a2.b1');
  es.send('b.patch', [{ op: 'add', path: '/-', value: 2 }], 'a2.b2');
  assert.deepStrictEqual(docs.a.document, { n: 2 });
  assert.deepStrictEqual(docs.b.document, [1, 2]);
  assert.equal(docs.a.status.connection, 'open');
  es.send('b.upstream', { ok: false, error: 'x', since: '2026-01-01T00:00:00Z' });
  assert.equal(docs.b.status.upstream.ok, false);
  assert.equal(docs.a.status.upstream.ok, true, 'another stream\'s upstream event reached a');
  es.drop();
  assert.equal(es.requests.at(-1).lastEventId, 'a2.b2', 'the native reconnect resumes every stream');
  assert.deepStrictEqual(docs.a.document, { n: 2 });
});

test('a refused stream reports refused and stops; the others go on', async () => {
  const docs = pollMux(url, ['a', 'b'], { EventSource: ES });
  const es = ES.last;
  es.open();
  es.send('refused', { stream: 'b', status: 404, error: 'no such stream' });
  es.send('a.snapshot', { n: 1 }, 'a1.');
  assert.equal(docs.b.status.connection, 'refused');
  assert.equal(docs.a.status.connection, 'open');
  mock.timers.tick(60000);
  assert.equal(ES.instances.length, 1, 'a refused stream was retried');
  assert.deepStrictEqual(docs.a.document, { n: 1 });
});

test('a refused connection is retried once for all, resuming; a stream whose patch fails starts over', async () => {
  const docs = pollMux(url, ['a', 'b'], { EventSource: ES, format: 'merge_patch' });
  let es = ES.last;
  es.open();
  es.send('a.snapshot', { n: 1 }, 'a1.');
  es.send('b.snapshot', { m: 1 }, 'a1.b1');
  es.fail();
  assert.equal(docs.a.status.connection, 'closed');
  mock.timers.tick(1000);
  await tick();
  assert.equal(ES.instances.length, 2, 'one new connection for both streams');
  es = ES.last;
  assert.equal(new URL(es.url).searchParams.get('last_event_id'), 'a1.b1');
  assert.equal(new URL(es.url).searchParams.get('format'), 'merge_patch');
  es.open();
  await tick();
  es.send('a.patch', { n: 2 }, 'a2.b1');
  assert.deepStrictEqual(docs.a.document, { n: 2 });
  es.send('b.patch', [1], 'a2.b2'); // not a merge patch: b starts over
  await tick();
  es = ES.last;
  assert.equal(ES.instances.length, 3);
  assert.equal(new URL(es.url).searchParams.get('last_event_id'), 'a2.', 'b starts over with a snapshot, a resumes');
  es.open();
  await tick();
  es.send('b.snapshot', { m: 3 }, 'a2.b3');
  assert.deepStrictEqual(docs.b.document, { m: 3 });
  assert.deepStrictEqual(docs.a.document, { n: 2 });
});
