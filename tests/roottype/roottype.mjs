// roottype.mjs walks the root of an upstream document through every kind (object, array,
// emptied array, nested arrays, scalars, null) behind a Caddy that tests/roottype_test.go
// started, and checks the streams after every step:
//
//   - Node clients, one per route and ?format= (none, json_patch, merge_patch,
//     snapshot), that apply RFC 6902 patches with fast-json-patch and RFC 7386 merge
//     patches with json-merge-patch, in the format they know they get: the one asked for,
//     or else the route's. A patch event must be an array in json_patch and an object in
//     merge_patch; snapshot clients get no patch at all.
//   - Resuming Node clients: at each step, one from two versions back and one from the
//     first version, per route and ?format=, holding that version's document.
//   - web/poll-sse.js in chromium (when settings.chromium is set), with and without a
//     format, on routes of every default.
//
// After every step each client must hold the upstream's document at the server's
// version (the ETag of a JSON GET), and each live stream must have received exactly the
// events its format calls for. It prints one JSON line per check passed, and exits 1 with
// the reason when one fails.
//
// Usage: node tests/roottype/roottype.mjs <settings.json>
//
// settings: {base, resumeBase?, control, routes: [{path, format}], steps: [JSON text],
// chromium?}: Caddy's site URL, that of a second node for the resuming clients, the URL
// that a PUT of a JSON text makes the upstream's document, the stream routes and their
// formats, the documents in turn, and the browser's path.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import jsonpatch from 'fast-json-patch';
import mergePatch from 'json-merge-patch';
import { assert, launchChromium, pass } from '../browser/harness.mjs';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const formats = ['json_patch', 'merge_patch', 'snapshot'];
const stepTimeout = 10000;


const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// nullMember reports whether an object within v, however deep, has a member that is null.
function nullMember(v) {
  if (v === null || typeof v !== 'object') return false;
  return Object.values(v).some((x) => (x === null && !Array.isArray(v)) || nullMember(x));
}

// wantTypes returns the events a live stream in format f gets for docs: a snapshot first,
// then a patch per change in json_patch, a snapshot per change in snapshot, and in
// merge_patch a patch only from an object to an object with no null member in any object.
function wantTypes(f, docs) {
  return docs.map((doc, i) => {
    if (i === 0 || f === 'snapshot') return 'snapshot';
    if (f === 'json_patch') return 'patch';
    return isObject(docs[i - 1]) && isObject(doc) && !nullMember(doc) ? 'patch' : 'snapshot';
  });
}

// SSEClient is one event stream read with node:http, parsed as the event-stream spec says,
// whose document is kept with the appliers of a client in format f.
class SSEClient {
  constructor(name, url, f, held = null) {
    Object.assign(this, { name, url, format: f, types: [], error: null, ended: false });
    this.doc = held ? structuredClone(held.doc) : undefined; // patched in place
    this.id = held?.id ?? null;
    const headers = { Accept: 'text/event-stream' };
    if (held) headers['Last-Event-ID'] = held.id;
    this.req = request(url, { headers }, (res) => this.read(res));
    this.req.on('error', (err) => this.fail(`request: ${err}`));
    this.req.end();
  }

  fail(msg) {
    if (!this.error && !this.closed) this.error = `${this.name}: ${msg}`;
  }

  close() {
    this.closed = true;
    this.req.destroy();
  }

  read(res) {
    if (res.statusCode !== 200) return this.fail(`status ${res.statusCode}`);
    res.setEncoding('utf8');
    let buf = '';
    let ev = { type: '', data: [] };
    let lastId = this.id ?? '';
    res.on('data', (chunk) => {
      buf += chunk;
      const lines = buf.split(/\r\n|\r|\n/);
      buf = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (ev.data.length) this.event(ev.type || 'message', ev.data.join('\n'), lastId);
          ev = { type: '', data: [] };
          continue;
        }
        const colon = line.indexOf(':');
        if (colon === 0) continue;
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') ev.type = value;
        else if (field === 'data') ev.data.push(value);
        else if (field === 'id' && !value.includes('\0')) lastId = value;
      }
    });
    res.on('end', () => this.fail('the stream ended'));
  }

  event(type, data, id) {
    if (type === 'upstream' || this.error) return;
    try {
      const value = JSON.parse(data);
      if (type === 'snapshot') this.doc = value;
      else if (type !== 'patch') throw new Error(`unexpected event ${type}`);
      else this.doc = this.patch(value);
      this.id = id;
      this.types.push(type);
    } catch (err) {
      this.fail(`${type} ${data}: ${err.message ?? err}`);
    }
  }

  patch(value) {
    assert(this.doc !== undefined, 'a patch before any document');
    switch (this.format) {
      case 'json_patch':
        assert(Array.isArray(value), 'a json_patch patch that is not an RFC 6902 array');
        return jsonpatch.applyPatch(this.doc, value, true, true).newDocument;
      case 'merge_patch':
        assert(isObject(value), 'a merge_patch patch that is not an RFC 7386 object');
        return mergePatch.apply(this.doc, value);
      default:
        throw new Error('a patch in snapshot format');
    }
  }
}

function put(url, body) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', timeout: 10000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`PUT ${url}: ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 10s`)));
    req.on('error', reject);
    req.end(body);
  });
}

// serverVersion returns the version a route serves, from the ETag of a JSON GET.
async function serverVersion(path, base = settings.base) {
  const res = await fetch(base + path, { headers: { Accept: 'application/json' }, signal: AbortSignal.timeout(10000) });
  await res.arrayBuffer();
  assert(res.ok, `GET ${path} answered ${res.status}`);
  return res.headers.get('ETag')?.replace(/^"|"$/g, '');
}

// waitVersion waits until every route of the node at base serves version id: a second
// node follows the store a moment after the first.
async function waitVersion(base, id) {
  const deadline = Date.now() + stepTimeout;
  for (const r of settings.routes) {
    while ((await serverVersion(r.path, base)) !== id) {
      assert(Date.now() < deadline, `${base}${r.path} did not reach version ${id}`);
      await sleep(20);
    }
  }
}

// nodeStreams returns a live Node client for each route and ?format=.
function nodeStreams(held, base = settings.base) {
  const out = [];
  for (const r of settings.routes) {
    for (const f of ['', ...formats]) {
      const url = base + r.path + (f ? `?format=${f}` : '');
      out.push(new SSEClient(`node ${r.path}${f ? '?format=' + f : ''}`, url, f || r.format, held));
      out.at(-1).path = r.path;
    }
  }
  return out;
}

// browserStreams are the pages' pollSSE clients: with and without a format, on routes of
// every default, within the six connections a browser opens to one host over HTTP/1.1.
function browserStreams() {
  const path = (f) => settings.routes.find((r) => r.format === f).path;
  return [
    { path: path('merge_patch'), options: {}, format: 'json_patch' },
    { path: path('merge_patch'), options: { format: 'merge_patch' }, format: 'merge_patch' },
    { path: path('json_patch'), options: { format: 'snapshot' }, format: 'snapshot' },
    { path: path('snapshot'), options: {}, format: 'json_patch' },
    { path: path('snapshot'), query: '?format=merge_patch', options: {}, format: 'merge_patch' },
  ].map((s) => ({ ...s, name: `browser ${s.path}${s.query ?? ''} ${JSON.stringify(s.options)}` }));
}

async function openBrowser() {
  const { context, close } = await launchChromium(settings.chromium);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.log(JSON.stringify({ pageerror: String(err) })));
  await page.goto(`${settings.base}/page`, { timeout: 15000 });
  const streams = browserStreams();
  await page.evaluate(async (streams) => {
    const { pollSSE } = await import('/poll-sse.js');
    window.lives = streams.map((s) => {
      const live = pollSSE(s.path + (s.query ?? ''), s.options);
      const l = { live, types: [], errors: [] };
      live.on('change', (doc, patch, info) => l.types.push(info.type));
      return l;
    });
  }, streams);
  const states = () =>
    page.evaluate(() => window.lives.map((l) => ({ doc: l.live.document, id: l.live.version, types: l.types })));
  return { streams, states, close };
}

// states returns every live client's name, route, format, document, version and events.
async function states(nodes, browser) {
  const out = nodes.map((c) => {
    if (c.error) throw new Error(c.error);
    return { name: c.name, path: c.path, format: c.format, doc: c.doc, id: c.id, types: c.types };
  });
  if (browser) {
    const got = await browser.states();
    browser.streams.forEach((s, i) => out.push({ ...s, ...got[i] }));
  }
  return out;
}

// waitAll waits until every client holds want.
async function waitAll(want, nodes, browser) {
  const deadline = Date.now() + stepTimeout;
  for (;;) {
    const all = await states(nodes, browser);
    const behind = all.filter((s) => !isDeepStrictEqual(s.doc, want));
    if (behind.length === 0) return all;
    assert(Date.now() < deadline, `not reached in ${stepTimeout} ms`, { want, behind });
    await sleep(20);
  }
}

// checkVersions checks that every client holds the version its route serves.
async function checkVersions(all) {
  const ids = {};
  for (const r of settings.routes) ids[r.path] = await serverVersion(r.path);
  for (const s of all) assert(s.id === ids[s.path], `${s.name} holds version ${s.id}, the server ${ids[s.path]}`);
  return ids;
}

// resume opens a client per route and ?format= holding held, on settings.resumeBase (a
// second node sharing the store) when set, and checks that its first event brings it to
// want at version id.
async function resume(held, want, id) {
  if (settings.resumeBase) await waitVersion(settings.resumeBase, id);
  const clients = nodeStreams(held, settings.resumeBase);
  try {
    const deadline = Date.now() + stepTimeout;
    while (clients.some((c) => c.types.length === 0)) {
      for (const c of clients) if (c.error) throw new Error(`resuming: ${c.error}`);
      assert(Date.now() < deadline, 'a resumed stream sent nothing', clients.filter((c) => !c.types.length).map((c) => c.name));
      await sleep(10);
    }
    for (const c of clients) {
      assert(!c.error, c.error);
      assert(isDeepStrictEqual(c.doc, want) && c.id === id, `${c.name} resumed to ${JSON.stringify(c.doc)} at ${c.id}`, { want, id });
    }
  } finally {
    clients.forEach((c) => c.close());
  }
}

async function main() {
  const steps = settings.steps.map((s) => JSON.parse(s));
  await put(settings.control, settings.steps[0]);
  const nodes = nodeStreams(null);
  const browser = settings.chromium ? await openBrowser() : null;
  const history = [];
  let resumes = 0;
  try {
    for (const [j, want] of steps.entries()) {
      if (j > 0) await put(settings.control, settings.steps[j]);
      const all = await waitAll(want, nodes, browser);
      const ids = await checkVersions(all);
      history.push({ doc: want, id: ids[settings.routes[0].path] });
      for (const i of new Set([j - 2, 0])) {
        if (i < 0 || i >= j || history[i].id === history[j].id) continue;
        await resume(history[i], want, history[j].id);
        resumes++;
      }
    }
    pass('every client held the upstream document at the server version after every step', { steps: steps.length, clients: nodes.length + (browser?.streams.length ?? 0) });
    pass('every resume brought the client to the document and version', { resumes: resumes * nodes.length });
    for (const s of await states(nodes, browser)) {
      const want = wantTypes(s.format, steps);
      assert(isDeepStrictEqual(s.types, want), `${s.name} received ${s.types}`, { want });
    }
    pass('every live stream received the events of its format', { merge_patch: wantTypes('merge_patch', steps).join(' ') });
  } finally {
    nodes.forEach((c) => c.close());
    await browser?.close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ fail: String(err?.stack ?? err) }));
  process.exit(1);
});
