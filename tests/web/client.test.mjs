// The pollSSE client of web/poll-sse.js over a fake EventSource that the tests drive:
// snapshots and patches, native reconnects with Last-Event-ID, clean reconnects after a
// patch that does not apply, upstream status, and the retries after a refused stream.
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { pollSSE } from '../../web/poll-sse.js';
import { FakeEventSource as ES } from './fake-event-source.mjs';

const url = 'http://demo.test/events';

beforeEach(() => {
  ES.reset();
  mock.timers.enable({ apis: ['setTimeout'] });
});

afterEach(() => mock.timers.reset());

// open starts a client and records what it reports.
function open(options = {}, at = url) {
  const live = pollSSE(at, { EventSource: ES, ...options });
  const changes = [];
  const statuses = [];
  live.on('change', (doc, patch, info) => changes.push({ doc, patch, ...info }));
  live.on('status', (s) => statuses.push(s));
  return { live, changes, statuses, es: ES.last };
}

function query(u) {
  return Object.fromEntries(new URL(u).searchParams);
}

test('format goes in the query, other parameters stay', () => {
  pollSSE('http://demo.test/events?room=a%20b&last_event_id=x', { EventSource: ES, format: 'merge_patch' });
  assert.deepStrictEqual(query(ES.last.url), { room: 'a b', format: 'merge_patch' });
  pollSSE(url, { EventSource: ES, withCredentials: true });
  assert.equal(ES.last.withCredentials, true);
});

test('the format is always asked for: the option, else the url\'s, else json_patch', () => {
  pollSSE(url, { EventSource: ES });
  assert.equal(ES.last.url, `${url}?format=json_patch`, 'the route\'s default cannot be known: ask');
  pollSSE(`${url}?format=merge_patch&room=1`, { EventSource: ES });
  assert.deepStrictEqual(query(ES.last.url), { format: 'merge_patch', room: '1' });
  pollSSE(`${url}?format=`, { EventSource: ES });
  assert.deepStrictEqual(query(ES.last.url), { format: 'json_patch' });
  pollSSE(`${url}?format=merge_patch`, { EventSource: ES, format: 'snapshot' });
  assert.deepStrictEqual(query(ES.last.url), { format: 'snapshot' });
});

// Patch events whose data is not of the format asked for (strings are sent as they are,
// so '"x"' is the JSON string x): each closes the stream and opens a clean one.
const wrongPatches = {
  json_patch: [{}, { a: 1 }, '"x"', 3, null, true],
  merge_patch: [[], [1], [{ op: 'replace', path: '', value: [] }], '"x"', 3, null, false],
  snapshot: [[], [{ op: 'add', path: '/b', value: 1 }], {}, { b: 1 }, '"x"', null],
};

for (const [format, patches] of Object.entries(wrongPatches)) {
  test(`${format}: a patch not of the format is refused, and a clean stream restores`, () => {
    for (const [i, patch] of patches.entries()) {
      ES.reset();
      const { live, changes, es } = open(i % 2 ? { format } : {}, i % 2 ? url : `${url}?format=${format}`);
      es.open();
      es.send('snapshot', [1, 2], 'v1');
      es.send('patch', patch, 'v2');
      assert.equal(es.readyState, ES.CLOSED, `${JSON.stringify(patch)} was taken in ${format}`);
      assert.equal(ES.instances.length, 2);
      assert.deepStrictEqual(query(ES.last.url), { format }, 'the new stream resumes');
      assert.deepStrictEqual(live.document, [1, 2]);
      assert.equal(live.version, 'v1');
      ES.last.open();
      ES.last.send('snapshot', [], 'v2');
      assert.deepStrictEqual(live.document, []);
      assert.equal(live.version, 'v2');
      assert.deepStrictEqual(
        changes.map((c) => `${c.type} ${c.id}`),
        ['snapshot v1', 'snapshot v2'],
      );
    }
  });
}

test('merge_patch: the root changes kind by snapshots; object patches merge', () => {
  const { live, es } = open({ format: 'merge_patch' });
  es.open();
  const steps = [
    ['snapshot', { a: 1, list: [1, 2] }, { a: 1, list: [1, 2] }],
    ['patch', { a: null, list: [] }, { list: [] }],
    ['snapshot', [1, 2], [1, 2]],
    ['snapshot', [], []],
    ['snapshot', '"x"', 'x'],
    ['snapshot', {}, {}],
    ['patch', { b: { c: [1] } }, { b: { c: [1] } }],
    ['snapshot', null, null],
  ];
  for (const [i, [type, data, doc]] of steps.entries()) {
    es.send(type, data, `v${i}`);
    assert.deepStrictEqual(live.document, doc, `after ${type} ${JSON.stringify(data)}`);
    assert.equal(live.version, `v${i}`);
  }
  assert.equal(ES.instances.length, 1);
});

test('snapshot then patches keep the document', () => {
  const { live, changes, statuses, es } = open({ format: 'json_patch' });
  assert.equal(live.status.connection, 'connecting');
  es.open();
  assert.deepStrictEqual(statuses.at(-1), { connection: 'open', upstream: { ok: true } });
  es.send('snapshot', { n: 1, items: ['a'] }, 'v1');
  es.send('patch', [{ op: 'replace', path: '/n', value: 2 }, { op: 'add', path: '/items/-', value: 'b' }], 'v2');
  assert.deepStrictEqual(live.document, { n: 2, items: ['a', 'b'] });
  assert.equal(live.version, 'v2');
  assert.deepStrictEqual(
    changes.map((c) => [c.type, c.id, c.patch === null]),
    [
      ['snapshot', 'v1', true],
      ['patch', 'v2', false],
    ],
  );
  assert.deepStrictEqual(changes[0].doc, { n: 1, items: ['a'] }, 'an earlier document changed');
  assert.equal(ES.instances.length, 1);
});

test('merge patches', () => {
  const { live, es } = open({ format: 'merge_patch' });
  es.open();
  es.send('snapshot', { a: { b: 1, c: 2 }, d: [1] }, 'v1');
  es.send('patch', { a: { c: null, e: 3 }, d: [2] }, 'v2');
  assert.deepStrictEqual(live.document, { a: { b: 1, e: 3 }, d: [2] });
  assert.equal(live.version, 'v2');
});

test('snapshot format: every change is a snapshot', () => {
  const { live, changes, es } = open({ format: 'snapshot' });
  es.open();
  es.send('snapshot', { a: 1 }, 'v1');
  es.send('snapshot', { a: 2 }, 'v2');
  assert.deepStrictEqual(live.document, { a: 2 });
  assert.deepStrictEqual(
    changes.map((c) => c.type),
    ['snapshot', 'snapshot'],
  );
});

test('a native reconnect keeps the document and resumes with a patch', () => {
  const { live, changes, statuses, es } = open();
  es.open();
  es.send('snapshot', { n: 1 }, 'v1');
  es.send('patch', [{ op: 'replace', path: '/n', value: 2 }], 'v2');
  es.drop();
  assert.equal(live.status.connection, 'connecting');
  assert.deepStrictEqual(live.document, { n: 2 }, 'the document was reset on a reconnect');
  assert.deepStrictEqual(es.requests.at(-1), { url: `${url}?format=json_patch`, lastEventId: 'v2' });
  es.open();
  es.send('patch', [{ op: 'replace', path: '/n', value: 5 }], 'v5');
  assert.deepStrictEqual(live.document, { n: 5 });
  assert.equal(live.version, 'v5');
  assert.equal(ES.instances.length, 1, 'a native reconnect must not open a new EventSource');
  assert.deepStrictEqual(
    changes.map((c) => c.type),
    ['snapshot', 'patch', 'patch'],
  );
  assert.deepStrictEqual(
    statuses.map((s) => s.connection),
    ['open', 'connecting', 'open'],
  );
});

test('a patch that does not apply: a clean reconnect, then a snapshot restores', () => {
  const { live, changes, es } = open({ format: 'json_patch' }, `${url}?room=1`);
  es.open();
  es.send('snapshot', { n: 1, list: [] }, 'v1');
  es.send('patch', [{ op: 'replace', path: '/n', value: 2 }], 'v2');
  es.send('patch', [{ op: 'replace', path: '/n', value: 3 }, { op: 'remove', path: '/list/0' }], 'v3');
  assert.equal(es.readyState, ES.CLOSED, 'the old EventSource is still open');
  assert.equal(ES.instances.length, 2);
  const fresh = ES.last;
  assert.deepStrictEqual(query(fresh.url), { room: '1', format: 'json_patch' }, 'the new stream resumes');
  assert.deepStrictEqual(live.document, { n: 2, list: [] }, 'not the last good document');
  assert.equal(live.version, 'v2');
  assert.equal(live.status.connection, 'connecting');
  fresh.open();
  fresh.send('snapshot', { n: 3, list: ['x'] }, 'v3b');
  assert.deepStrictEqual(live.document, { n: 3, list: ['x'] });
  assert.equal(live.version, 'v3b');
  fresh.send('patch', [{ op: 'remove', path: '/list/0' }], 'v4');
  assert.deepStrictEqual(live.document, { n: 3, list: [] });
  assert.deepStrictEqual(
    changes.map((c) => `${c.type} ${c.id}`),
    ['snapshot v1', 'patch v2', 'snapshot v3b', 'patch v4'],
  );
});

test('broken data and a patch before any snapshot force a clean reconnect', () => {
  const { live, es } = open();
  es.open();
  es.send('patch', [{ op: 'add', path: '/a', value: 1 }], 'v1');
  assert.equal(ES.instances.length, 2);
  assert.equal(live.document, undefined);
  const second = ES.last;
  second.open();
  second.send('snapshot', { a: 1 }, 'v1');
  second.send('patch', '[{"op": "replace", "path": "/a", "value": 2}', 'v2');
  assert.equal(ES.instances.length, 3);
  assert.deepStrictEqual(live.document, { a: 1 });
  ES.last.open();
  ES.last.send('patch', [{ op: 'replace', path: '/a', value: 2 }], 'v2');
  assert.equal(ES.instances.length, 4, 'a new stream applied a patch before its snapshot');
});

test('events of a closed stream are ignored', () => {
  const { live, es } = open();
  es.open();
  es.send('snapshot', { a: 1 }, 'v1');
  es.send('patch', [{ op: 'test', path: '/a', value: 9 }], 'v2');
  es.readyState = ES.OPEN;
  es.send('snapshot', { a: 'stale' }, 'v9');
  assert.deepStrictEqual(live.document, { a: 1 });
});

test('upstream status: failing, then recovered; ids do not move', () => {
  const { live, statuses, es } = open();
  es.open();
  es.send('snapshot', { a: 1 }, 'v1');
  const failing = { ok: false, status: 503, error: 'upstream answered 503', since: '2026-01-02T03:04:05Z' };
  es.send('upstream', failing);
  assert.deepStrictEqual(live.status, { connection: 'open', upstream: failing });
  assert.equal(live.version, 'v1');
  es.send('upstream', { ok: true });
  assert.deepStrictEqual(live.status.upstream, { ok: true });
  assert.deepStrictEqual(
    statuses.map((s) => s.upstream.ok),
    [true, false, true],
  );
  assert.deepStrictEqual(live.document, { a: 1 });
});

test('a new stream that does not report the upstream failing means it recovered', () => {
  const { live, es } = open();
  es.open();
  es.send('snapshot', { a: 1 }, 'v1');
  es.send('upstream', { ok: false, status: 502, error: 'x', since: '2026-01-02T03:04:05Z' });
  es.drop();
  es.open();
  es.send('upstream', { ok: false, status: 502, error: 'x', since: '2026-01-02T03:04:05Z' });
  mock.timers.tick(5000);
  assert.equal(live.status.upstream.ok, false, 'a failing upstream was cleared');
  es.drop();
  es.open();
  mock.timers.tick(999);
  assert.equal(live.status.upstream.ok, false);
  mock.timers.tick(1);
  assert.deepStrictEqual(live.status, { connection: 'open', upstream: { ok: true } });
});

test('a refused stream is retried with the version held, backing off', () => {
  const { live, statuses, es } = open({ format: 'json_patch' });
  es.open();
  es.send('snapshot', { n: 1 }, 'v1');
  es.fail();
  assert.equal(live.status.connection, 'closed');
  mock.timers.tick(999);
  assert.equal(ES.instances.length, 1);
  mock.timers.tick(1);
  assert.equal(ES.instances.length, 2);
  const second = ES.last;
  assert.deepStrictEqual(query(second.url), { format: 'json_patch', last_event_id: 'v1' });
  second.fail();
  mock.timers.tick(1999);
  assert.equal(ES.instances.length, 2, 'no back-off');
  mock.timers.tick(1);
  const third = ES.last;
  third.open();
  third.send('patch', [{ op: 'replace', path: '/n', value: 2 }], 'v2');
  assert.deepStrictEqual(live.document, { n: 2 });
  assert.equal(ES.instances.length, 3);
  assert.deepStrictEqual(
    statuses.map((s) => s.connection),
    ['open', 'closed', 'connecting', 'closed', 'connecting', 'open'],
  );
});

test('close ends the stream and the retries', () => {
  const { live, statuses, es } = open();
  es.open();
  live.close();
  assert.equal(es.readyState, ES.CLOSED);
  assert.equal(live.status.connection, 'closed');
  es.readyState = ES.OPEN;
  es.send('snapshot', { a: 1 }, 'v1');
  assert.equal(live.document, undefined);
  const n = statuses.length;
  mock.timers.tick(60000);
  assert.equal(ES.instances.length, 1);
  assert.equal(statuses.length, n);

  const other = open();
  other.es.fail();
  other.live.close();
  mock.timers.tick(60000);
  assert.equal(ES.instances.length, 2, 'a retry after close');
});

test('listeners: off, and one that throws does not stop the others', () => {
  const { live, es } = open();
  const seen = [];
  const first = () => seen.push('first');
  live.on('change', first).on('change', () => {
    throw new Error('listener failed');
  });
  live.on('change', () => seen.push('last'));
  es.open();
  es.send('snapshot', { a: 1 }, 'v1');
  assert.deepStrictEqual(seen, ['first', 'last']);
  assert.equal(ES.instances.length, 1, 'a throwing listener caused a reconnect');
  assert.throws(() => mock.timers.tick(0), /listener failed/);
  live.off('change', first);
  es.send('snapshot', { a: 2 }, 'v2');
  assert.deepStrictEqual(seen, ['first', 'last', 'last']);
});

test('a stream closed after the upstream refused the credentials reports unauthorized and waits for the page', () => {
  for (const status of [401, 403]) {
    ES.reset();
    const { live, statuses, es } = open();
    es.open();
    es.send('snapshot', { mine: 1 }, 'v1');
    const denied = { ok: false, status, error: `upstream answered ${status}`, since: '2026-01-02T03:04:05Z' };
    es.send('upstream', denied);
    es.drop(); // the server closes the stream; the EventSource reconnects by itself
    es.fail(); // and is refused
    assert.deepStrictEqual(live.status, { connection: 'unauthorized', upstream: denied });
    mock.timers.tick(120000);
    assert.equal(ES.instances.length, 1, 'a refused credential was retried');
    assert.deepStrictEqual(
      statuses.map((s) => s.connection),
      ['open', 'open', 'connecting', 'unauthorized'],
    );
    assert.deepStrictEqual(live.document, { mine: 1 });
    live.close();
  }
  // Another failing status keeps retrying.
  ES.reset();
  const { es } = open();
  es.open();
  es.send('upstream', { ok: false, status: 502, error: 'x', since: '2026-01-02T03:04:05Z' });
  es.fail();
  mock.timers.tick(1000);
  assert.equal(ES.instances.length, 2);
});
