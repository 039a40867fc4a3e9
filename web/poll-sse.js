// poll-sse.js: the browser client of caddy-poll-sse. It keeps the live document of a
// poll_sse stream by applying its snapshot and patch events, and reports the connection
// and the upstream's health. No dependencies; native EventSource underneath.

const isArr = Array.isArray;
// isObj and isMap are read as conditions: a falsy v is returned as it is.
const isObj = (v) => v && typeof v == 'object';
const isMap = (v) => isObj(v) && !isArr(v);
const has = Object.hasOwn;
const fail = () => {
  throw Error('bad patch');
};
// put sets an own member, keeping its place, even when it is named "__proto__".
const put = (o, k, v) =>
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });

// parse splits an RFC 6901 JSON Pointer into its unescaped reference tokens.
function parse(p) {
  if (p != '' && p[0] != '/') fail(); // p is a string, or p.split throws
  return p
    .split('/')
    .slice(1)
    .map((t) => (/~([^01]|$)/.test(t) ? fail() : t.replace(/~[01]/g, (m) => '~/'[m[1]])));
}

// index returns the array position token t names; "-" and the length only for add.
function index(a, t, add) {
  if (add && t == '-') return a.length;
  if (!/^(0|[1-9]\d*)$/.test(t) || +t > a.length - !add) fail();
  return +t;
}

// get returns the value at the reference tokens path.
function get(v, path) {
  for (const t of path) v = isArr(v) ? v[index(v, t)] : isObj(v) && has(v, t) ? v[t] : fail();
  return v;
}

// equal compares JSON values.
function equal(a, b) {
  if (a === b) return true;
  if (!isObj(a) || !isObj(b) || isArr(a) != isArr(b)) return false;
  const k = Object.keys(a);
  return k.length == Object.keys(b).length && k.every((x) => has(b, x) && equal(a[x], b[x]));
}

// applyPatch returns doc with the RFC 6902 patch ops applied, or throws. doc is never
// modified: containers on the changed paths are copied, all else is shared.
export function applyPatch(doc, ops) {
  if (!isArr(ops)) fail();
  const root = { r: doc };
  const fresh = new Set(); // containers copied by this patch: safe to modify
  const parent = (path) => {
    let c = root;
    for (const t of path.slice(0, -1)) {
      const k = isArr(c) ? index(c, t) : has(c, t) ? t : fail();
      let v = c[k];
      if (!isObj(v)) fail();
      if (!fresh.has(v)) fresh.add((v = isArr(v) ? v.slice() : { ...v })), put(c, k, v);
      c = v;
    }
    return c;
  };
  const edit = (path, op, v) => {
    const c = parent(path);
    const t = path[path.length - 1];
    const add = op == 'add';
    if (isArr(c)) {
      const i = index(c, t, add);
      add ? c.splice(i, 0, v) : op == 'remove' ? c.splice(i, 1) : (c[i] = v);
    } else if (add || has(c, t)) op == 'remove' ? delete c[t] : put(c, t, v);
    else fail();
  };
  for (const o of ops) {
    if (!isObj(o)) fail();
    const { op } = o;
    const path = ['r', ...parse(o.path)];
    const value = () => ('value' in o ? o.value : fail());
    if (op === 'add' || op === 'replace') edit(path, op, value());
    else if (op === 'remove') edit(path, op);
    else if (op === 'test') equal(get(root, path), value()) || fail();
    else if (op === 'move' || op === 'copy') {
      const from = ['r', ...parse(o.from)];
      const v = get(root, from);
      if (op === 'copy') fresh.clear(); // v may now be reached twice
      else if (o.path.startsWith(o.from + '/')) fail();
      else edit(from, 'remove');
      edit(path, 'add', v);
    } else fail();
  }
  return 'r' in root ? root.r : fail();
}

// mergePatch returns target with the RFC 7386 merge patch applied; target is not modified.
export function mergePatch(target, patch) {
  if (!isMap(patch)) return patch;
  const out = isMap(target) ? { ...target } : {};
  for (const k of Object.keys(patch)) {
    if (patch[k] === null) delete out[k];
    else put(out, k, mergePatch(has(out, k) ? out[k] : undefined, patch[k]));
  }
  return out;
}

// pollSSE opens a stream and keeps its document; see poll-sse.d.ts.
export function pollSSE(url, options = {}) {
  const G = globalThis;
  const ES = options.EventSource || G.EventSource;
  const listeners = {};
  const ok = { ok: true };
  const connecting = 'connecting';
  const closed = 'closed';
  const lastID = 'last_event_id';
  const jsonPatch = 'json_patch';
  let es, timer; // timer: the retry while closed, the upstream check while open
  let delay = 500; // half the next retry's delay
  let synced = false; // the current connection has told us which version we hold

  const emit = (name, ...args) =>
    listeners[name]?.forEach((fn) => {
      try {
        fn(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    });

  // report tells of a new status; a falsy connection or upstream keeps the one before.
  const report = (connection, upstream) => {
    const was = live.status;
    connection ||= was.connection;
    upstream ||= was.upstream;
    if (connection != was.connection || upstream != was.upstream) emit('status', (live.status = { connection, upstream }));
  };

  const stop = () => {
    clearTimeout(timer);
    es?.close();
    es = null;
  };

  // connect opens a new EventSource; with last, the server resumes from that version.
  const connect = (last) => {
    stop();
    synced = !!last;
    const u = new URL(url, G.location);
    const q = u.searchParams;
    // The format is always asked for, so every patch is read as what it must be: the
    // route's own default cannot be known here.
    const format = options.format || q.get('format') || jsonPatch;
    q.set('format', format);
    last ? q.set(lastID, last) : q.delete(lastID);
    const src = (es = new ES(u.href, options, live));
    const on = (name, fn) => src.addEventListener(name, (e) => src == es && fn(e));
    report(connecting);
    on('open', () => {
      delay = 500;
      report('open');
      // a new stream reports a failing upstream at once and says nothing when it is fine
      if (!live.status.upstream.ok) timer = setTimeout(() => report(0, ok), 1000);
    });
    on('error', (e) => {
      if (src.readyState != 2) return report(connecting);
      es = null;
      // Not retried until the page opens a new stream: a transport's own end (a 401 or 403
      // to its headers, a stream a mux refused), or a stream refused after the upstream
      // refused this client's forwarded credentials.
      const end = e.connection || (/40[13]/.test(live.status.upstream.status) && 'unauthorized');
      report(end || closed);
      end || (timer = setTimeout(() => connect(live.version), (delay = Math.min(delay * 2, 30000))));
    });
    const onData = (type) =>
      on(type, (e) => {
        let doc, patch = null;
        try {
          doc = JSON.parse(e.data);
          if (type == 'patch') {
            if (!synced) fail();
            patch = doc;
            // a patch not of the format asked for is refused like one that does not apply:
            // an RFC 6902 array in json_patch, an RFC 7386 object in merge_patch
            doc = (format == jsonPatch ? applyPatch : format == 'merge_patch' && isMap(patch) ? mergePatch : fail)(
              live.document,
              patch,
            );
          }
        } catch {
          return connect(); // start clean: a new connection without Last-Event-ID
        }
        synced = true;
        live.document = doc;
        emit('change', doc, patch, { type, id: (live.version = e.lastEventId) });
      });
    onData('snapshot');
    onData('patch');
    on('upstream', (e) => {
      clearTimeout(timer);
      try {
        report(0, JSON.parse(e.data));
      } catch {}
    });
  };

  // live.document is undefined until the first snapshot
  const live = {
    version: null,
    status: { connection: connecting, upstream: ok },
    on(name, fn) {
      (listeners[name] ||= new Set()).add(fn);
      return live;
    },
    off(name, fn) {
      listeners[name]?.delete(fn);
      return live;
    },
    close() {
      stop();
      report(closed);
    },
  };
  connect();
  return live;
}
