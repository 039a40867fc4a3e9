// e2e.mjs drives Debian's chromium with playwright-core through the demo of
// caddyfile.example (and of caddyfile.h2.example), served by a Caddy that
// tests/browser_test.go started. It prints one JSON line per check passed, and exits 1
// with the reason when one fails.
//
// Usage: node tests/browser/e2e.mjs <settings.json>
//
// settings: {base, admin, caddyfile, apiDir, artifacts, h2Base?, h2Admin?, h2Caddyfile?,
// chromium}: the demo's URL, the admin API's URL, the Caddyfile to reload with, the
// directory of the simulated API (where the file "down" makes it fail), where to write the
// screenshot, the URL, admin API and Caddyfile of the HTTP/2 variant, and the browser's
// path.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { assert, call, launchChromium, pass } from './harness.mjs';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const wait = { timeout: 30000, polling: 100 };


async function fetchJSON(url, init = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10000) });
  assert(res.ok, `${url} answered ${res.status}`);
  return res.json();
}

// post sends a POST with node:http (see call).
const post = (url, body, headers) => call(url, { method: 'POST', body, headers });

// upstreamAt returns the simulated API's document of a tick.
const upstreamAt = (tick) => fetchJSON(`${settings.base}/api/state?tick=${tick}`);

// liveDocument returns the page's document, read twice around nothing so that it is one
// version.
const liveDocument = (page) => page.evaluate(() => window.live?.document ?? null);
const trace = (page) => page.evaluate(() => window.demo.trace);
const changes = (t) => t.filter((e) => e.kind === 'change');

// expectUpstreamEqual checks that the page holds exactly the upstream's document of the
// tick it shows.
async function expectUpstreamEqual(page, check) {
  const doc = await liveDocument(page);
  assert(doc && Number.isInteger(doc.tick), 'the page holds no document', doc);
  const want = await upstreamAt(doc.tick);
  assert(isDeepStrictEqual(doc, want), 'the page document differs from the upstream', { got: doc, want });
  pass(check, { tick: doc.tick, rows: doc.instruments.length });
}

// waitChanges waits until the page has applied n more changes than it had at mark.
async function waitChanges(page, mark, n) {
  await page.waitForFunction(
    ([mark, n]) => window.demo.trace.slice(mark).filter((e) => e.kind === 'change').length >= n,
    [mark, n],
    wait,
  );
}

async function showsUpstreamDocument(page) {
  await page.goto(`${settings.base}/`, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 16, null, wait);
  await expectUpstreamEqual(page, 'the page shows the upstream document');
  const first = await page.textContent('#rows tr:first-child td.sym');
  const doc = await liveDocument(page);
  assert(first === doc.instruments[0].symbol, 'the table does not show the document', first);
  pass('the table shows the document', { first });
}

async function twentyChanges(page) {
  const mark = (await trace(page)).length;
  await waitChanges(page, mark, 20);
  const got = changes((await trace(page)).slice(mark));
  assert(
    got.every((e) => e.type === 'patch' && e.format === 'json_patch'),
    'a stream without trouble sent more than patches',
    got,
  );
  await expectUpstreamEqual(page, 'after 20 upstream changes the page equals the upstream');
  await page.waitForTimeout(300); // a cell or two mid-flash
  await page.screenshot({ path: join(settings.artifacts, 'dashboard.png') });
  pass('screenshot', { path: join(settings.artifacts, 'dashboard.png') });
}

// reload posts a Caddyfile to an admin API.
async function reload(admin, caddyfile) {
  const res = await post(`${admin}/load`, readFileSync(caddyfile), {
    'Content-Type': 'text/caddyfile',
    'Cache-Control': 'must-revalidate', // reload even though the config is the same
  });
  assert(res.status === 200, `reload answered ${res.status}`, res.body);
}

// keptThroughReload reloads Caddy with the same config: the HTTP/1.1 stream stays open
// and goes on with patches, without a reconnect.
async function keptThroughReload(page) {
  const mark = (await trace(page)).length;
  await reload(settings.admin, settings.caddyfile);
  await waitChanges(page, mark, 8);
  const after = (await trace(page)).slice(mark);
  const statuses = after.filter((e) => e.kind === 'status').map((e) => e.connection);
  assert(statuses.length === 0, 'the stream reconnected across a reload that kept its settings', after);
  assert(changes(after).every((e) => e.type === 'patch'), 'a snapshot across a reload that kept its settings', after);
  pass('the stream stayed open across a same-config reload', { events: changes(after).length });
  await expectUpstreamEqual(page, 'after the reload the page equals the upstream');
}

// resumesAfterCut reloads the HTTP/2 demo with the same config: its HTTP/2 stream is
// drained (an HTTP/2 stream cannot outlive its server), the loop and its history stay,
// and the browser's EventSource comes back with Last-Event-ID and gets a patch.
async function resumesAfterCut(context) {
  const page = await context.newPage();
  await page.goto(`${settings.h2Base}/`, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 16, null, wait);
  await waitChanges(page, 0, 3);
  const mark = (await trace(page)).length;
  await reload(settings.h2Admin, settings.h2Caddyfile);
  await page.waitForFunction(
    (mark) => {
      const t = window.demo.trace.slice(mark);
      const dropped = t.findIndex((e) => e.kind === 'status' && e.connection === 'connecting');
      const reopened = t.findIndex((e, i) => i > dropped && e.kind === 'status' && e.connection === 'open');
      return dropped >= 0 && reopened > dropped && t.slice(reopened).filter((e) => e.kind === 'change').length >= 3;
    },
    mark,
    wait,
  );
  const after = (await trace(page)).slice(mark);
  const types = changes(after).map((e) => e.type);
  assert(types[0] === 'patch', 'the stream resumed with a snapshot', after);
  assert(!types.includes('snapshot'), 'a snapshot after the cut', after);
  pass('the cut stream resumed with a patch', { events: types.length, statuses: after.filter((e) => e.kind === 'status').map((e) => e.connection) });
  await expectUpstreamEqual(page, 'after the cut the page equals the upstream again');
  await page.close();
}

async function upstreamStatus(page) {
  const down = join(settings.apiDir, 'down');
  const before = await liveDocument(page);
  writeFileSync(down, '');
  try {
    await page.waitForFunction(() => document.querySelector('#upstream').textContent.includes('failing (503)'), null, wait);
    await page.waitForSelector('#banner.show', { timeout: 5000 });
    const status = await page.evaluate(() => window.live.status);
    assert(status.upstream.ok === false && status.upstream.status === 503 && status.upstream.since, 'status', status);
    const held = await liveDocument(page);
    assert(held.tick >= before.tick, 'the document went back', { before: before.tick, held: held.tick });
    pass('the page shows the upstream failing', { upstream: status.upstream });
  } finally {
    rmSync(down, { force: true });
  }
  await page.waitForFunction(() => document.querySelector('#upstream').textContent === 'upstream ok', null, wait);
  await page.waitForSelector('#banner:not(.show)', { state: 'attached', timeout: 5000 });
  const mark = (await trace(page)).length;
  await waitChanges(page, mark, 2);
  pass('the failure clears when the upstream recovers');
  await expectUpstreamEqual(page, 'after the recovery the page equals the upstream');
}

async function mergePatchToggle(page) {
  const mark = (await trace(page)).length;
  await page.click('button[data-format="merge_patch"]');
  await page.waitForFunction(
    (mark) => window.demo.trace.slice(mark).filter((e) => e.kind === 'change' && e.format === 'merge_patch').length >= 5,
    mark,
    wait,
  );
  const all = changes((await trace(page)).slice(mark));
  const got = all.slice(all.findIndex((e) => e.format === 'merge_patch'));
  assert(got.every((e) => e.format === 'merge_patch'), 'json_patch events after the switch', all);
  assert(got[0].type === 'snapshot' && got.slice(1).every((e) => e.type === 'patch'), 'merge_patch stream', got);
  assert(new URL(page.url()).searchParams.get('format') === 'merge_patch', 'the page URL keeps the format', page.url());
  await expectUpstreamEqual(page, 'merge_patch: the page equals the upstream');
}

// tenStreamsOverH2 opens the page of ten streams over HTTP/2 and checks that every
// stream updates and all share one connection.
async function tenStreamsOverH2(context) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const streams = [];
  cdp.on('Network.responseReceived', (e) => {
    if (e.type === 'EventSource') streams.push({ url: e.response.url, protocol: e.response.protocol, connection: e.response.connectionId });
  });
  await cdp.send('Network.enable');
  await page.goto(`${settings.h2Base}/streams`, { timeout: 15000 });
  await page.waitForFunction(() => window.streams?.length === 10 && window.streams.every((s) => s.changes >= 3), null, wait);
  const nav = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  assert(nav === 'h2', 'the page did not come over HTTP/2', nav);
  assert(streams.length === 10, 'EventSource responses', streams);
  assert(streams.every((s) => s.protocol === 'h2'), 'a stream not over HTTP/2', streams);
  const connections = new Set(streams.map((s) => s.connection));
  assert(connections.size === 1, 'the streams used more than one connection', streams);
  const shown = await page.evaluate(() => window.streams.map((s) => s.changes));
  pass('ten streams over one HTTP/2 connection', { protocol: nav, connections: connections.size, changes: shown });
  await page.close();
}

async function main() {
  const { context, close } = await launchChromium(settings.chromium, {
    viewport: { width: 1360, height: 740 },
    colorScheme: 'light',
  });
  try {
    const page = await context.newPage();
    page.on('pageerror', (err) => console.log(JSON.stringify({ pageerror: String(err) })));
    await showsUpstreamDocument(page);
    await twentyChanges(page);
    await keptThroughReload(page);
    await upstreamStatus(page);
    await mergePatchToggle(page);
    await resumesAfterCut(context);
    await tenStreamsOverH2(context);
  } finally {
    await close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ fail: String(err?.stack ?? err) }));
  process.exit(1);
});
