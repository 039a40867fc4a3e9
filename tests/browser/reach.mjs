// reach.mjs drives chromium through the optional parts of the browser client, against a
// Caddy that tests/reach_browser_test.go started over HTTP/1.1: ten tabs sharing one
// stream, a stream that sends a bearer token, and the long-poll fallback behind a proxy
// that buffers event streams. It prints one JSON line per check passed.
//
// Usage: node tests/browser/reach.mjs <settings.json>
//
// settings: {base, buffered, admin, upstream, token, accessLog, chromium, intervalMs}
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { assert, call, launchChromium, pass } from './harness.mjs';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const wait = { timeout: 30000, polling: 50 };

const upstream = async () => JSON.parse((await call(`${settings.upstream}/state.json`)).body);
const next = async () => +(await call(`${settings.upstream}/next`, { method: 'POST' })).body;

// subscribers returns the subscribers of the route's loops, from the admin API.
async function subscribers(route) {
  const { loops } = JSON.parse((await call(`${settings.admin}/poll_sse/loops`)).body);
  return loops.filter((l) => l.route === route).reduce((n, l) => n + l.subscribers, 0);
}

// resumes returns the route's resumes_total by kind, from the metrics.
async function resumes(route) {
  const text = (await call(`${settings.admin}/metrics`)).body;
  const out = { none: 0, patch: 0, snapshot: 0 };
  for (const m of text.matchAll(/^caddy_poll_sse_resumes_total\{([^}]*)\} (\S+)$/gm)) {
    if (m[1].includes(`route="${route}"`)) out[/kind="(\w+)"/.exec(m[1])[1]] = +m[2];
  }
  return out;
}

// open loads a blank page of base and starts pollSSE of the part with the options given,
// recording its changes and statuses in window.trace.
async function open(context, base, part, path, options) {
  const page = await context.newPage();
  await page.goto(`${base}/blank`, { timeout: 15000 });
  await page.evaluate(
    async ([part, path, options]) => {
      const { pollSSE } = await import(part);
      window.trace = [];
      window.live = pollSSE(path, options);
      window.live.on('change', (doc, patch, info) => window.trace.push({ kind: 'change', type: info.type, rev: doc.rev }));
      window.live.on('status', (s) => window.trace.push({ kind: 'status', connection: s.connection }));
    },
    [part, path, options],
  );
  return page;
}

const documentOf = (page) => page.evaluate(() => window.live.document ?? null);
const waitRev = (page, rev, timeout = wait.timeout) =>
  page.waitForFunction((rev) => window.live.document?.rev >= rev, rev, { ...wait, timeout });

async function expectAllEqual(pages, check) {
  const want = await upstream();
  for (const [i, page] of pages.entries()) {
    await waitRev(page, want.rev);
    const doc = await documentOf(page);
    assert(isDeepStrictEqual(doc, want), `tab ${i} holds another document`, { got: doc?.rev, want: want.rev });
  }
  pass(check, { tabs: pages.length, rev: want.rev });
}

async function sharedTabs(context) {
  const opts = { shared: true };
  const leader = await open(context, settings.base, '/poll-sse-shared.js', '/events', opts);
  await leader.waitForFunction(() => window.live.document !== undefined, null, wait);
  const pages = [leader];
  for (let i = 1; i < 10; i++) pages.push(await open(context, settings.base, '/poll-sse-shared.js', '/events', opts));
  for (const page of pages) await page.waitForFunction(() => window.live.status.connection === 'open', null, wait);
  const n = await subscribers('shared');
  assert(n === 1, 'ten tabs with shared: true hold more than one stream', { subscribers: n });
  pass('ten tabs on one origin hold one stream', { subscribers: n });

  for (let i = 0; i < 20; i++) {
    await next();
    await new Promise((r) => setTimeout(r, 2 * settings.intervalMs));
  }
  await expectAllEqual(pages, 'every tab holds the upstream document after 20 changes');

  const before = await resumes('shared');
  const marks = await Promise.all(pages.slice(1).map((p) => p.evaluate(() => window.trace.length)));
  await leader.close();
  const closed = Date.now();
  const rev = await next();
  const rest = pages.slice(1);
  for (const page of rest) await waitRev(page, rev, 2000);
  const took = Date.now() - closed;
  await new Promise((r) => setTimeout(r, 500));
  const after = await resumes('shared');
  for (const [i, page] of rest.entries()) {
    const types = await page.evaluate((m) => window.trace.slice(m).filter((e) => e.kind === 'change').map((e) => e.type), marks[i]);
    assert(types.length > 0 && types.every((t) => t === 'patch'), `tab ${i + 1} got a snapshot after the handover`, types);
  }
  assert(after.snapshot === before.snapshot, 'the new leading tab resumed with a snapshot', { before, after });
  assert(after.patch + after.none > before.patch + before.none, 'the new leading tab did not resume', { before, after });
  const m = await subscribers('shared');
  assert(m === 1, 'after the handover the tabs hold more than one stream', { subscribers: m });
  await expectAllEqual(rest, 'after the handover every tab holds the upstream document');
  pass('closing the leading tab hands over within 2 s with a patch', { ms: took, before, after });
  for (const page of rest) await page.close();
}

async function bearer(context) {
  const urls = [];
  context.on('request', (r) => urls.push(r.url()));
  const page = await open(context, settings.base, '/poll-sse-fetch.js', '/private', {
    headers: { Authorization: `Bearer ${settings.token}` },
  });
  await page.waitForFunction(() => window.live.document !== undefined, null, wait);
  // max_connection_lifetime 1s cuts the stream: each reconnect resumes
  for (let i = 0; i < 8; i++) {
    await next();
    await new Promise((r) => setTimeout(r, 400));
  }
  await expectAllEqual([page], 'the headers option sends Authorization');
  const trace = await page.evaluate(() => window.trace);
  const snapshots = trace.filter((e) => e.type === 'snapshot').length;
  const reconnects = trace.filter((e) => e.connection === 'open').length - 1;
  const r = await resumes('private');
  assert(reconnects >= 2 && snapshots === 1 && r.snapshot === 0 && r.patch + r.none >= 2, 'the stream with headers did not resume', { reconnects, snapshots, r });
  const log = readFileSync(settings.accessLog, 'utf8');
  assert(log.includes('/private'), 'the access log holds no request of the stream');
  assert(!log.includes(settings.token), 'the token is in the access log');
  assert(!urls.some((u) => u.includes(settings.token) || u.includes('last_event_id')), 'the token or the version is in a URL', urls);
  pass('the token is neither in a URL nor in the access log, and resume works', { reconnects, resumes: r });
  await page.close();

  const seen = urls.length;
  const denied = await open(context, settings.base, '/poll-sse-fetch.js', '/private', { headers: { Authorization: 'Bearer wrong' } });
  await denied.waitForFunction(() => window.live.status.connection === 'unauthorized', null, wait);
  await new Promise((r) => setTimeout(r, 3000));
  const tries = urls.slice(seen).filter((u) => u.includes('/private')).length;
  assert(tries === 1, 'an unauthorized stream was retried', { tries });
  pass('a refused token is reported as unauthorized and not retried');
  await denied.close();
}

async function fallback(context) {
  const polls = [];
  context.on('request', (r) => r.headers()['prefer'] && polls.push(r.url()));
  const page = await open(context, settings.buffered, '/poll-sse-longpoll.js', '/events', { fallback: 'auto', fallbackAfter: 1500 });
  await page.waitForFunction(() => window.live.document !== undefined, null, wait);
  assert(polls.length > 0, 'the client did not long-poll behind the buffering proxy');
  let worst = 0;
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const rev = await next();
    const t0 = Date.now();
    await waitRev(page, rev, 10000);
    worst = Math.max(worst, Date.now() - t0);
  }
  assert(worst <= settings.intervalMs + 1000, 'the long-polling client lags the upstream', { worst });
  await expectAllEqual([page], 'behind a buffering proxy the client long-polls and keeps up');
  await page.close();
  return worst;
}

async function mux(context) {
  const names = Array.from({ length: 10 }, (_, i) => `m${i}`);
  const requests = [];
  context.on('request', (r) => r.url().includes('/mux') && requests.push(r.url()));
  const page = await context.newPage();
  await page.goto(`${settings.base}/blank`, { timeout: 15000 });
  await page.evaluate(async (names) => {
    const { pollMux } = await import('/poll-sse-mux.js');
    window.docs = pollMux('/mux', names);
  }, names);
  for (let i = 0; i < 5; i++) {
    await next();
    await new Promise((r) => setTimeout(r, 3 * settings.intervalMs));
  }
  const want = await upstream();
  await page.waitForFunction(
    ([names, rev]) => names.every((n) => window.docs[n].document?.rev === rev),
    [names, want.rev],
    wait,
  );
  const docs = await page.evaluate((names) => names.map((n) => window.docs[n].document), names);
  assert(docs.every((d) => isDeepStrictEqual(d, want)), 'a mux stream holds another document');
  const counts = await Promise.all(names.map((n) => subscribers(n)));
  assert(counts.every((c) => c === 1) && requests.length === 1, 'ten routes did not share one mux connection', { counts, requests });
  pass('pollMux keeps ten routes on one connection', { rev: want.rev, requests: requests.length });
  await page.close();
}

const { context, close } = await launchChromium(settings.chromium);
try {
  await mux(context);
  await sharedTabs(context);
  await bearer(context);
  const worst = await fallback(context);
  console.log(JSON.stringify({ info: 'long-poll lag', worstMs: worst }));
} finally {
  await close();
}
