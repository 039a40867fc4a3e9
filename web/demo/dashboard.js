// The demo dashboard: a market board kept live by poll-sse.js. window.live is the current
// client and window.demo.trace what it reported, for a look in the console (and the tests).
import { pollSSE } from '/poll-sse.js';

const $ = (id) => document.getElementById(id);
const logSize = 30;
const trace = [];
window.demo = { trace };

const money = (v) => v.toFixed(2);
const signed = (v) => (v > 0 ? '+' : '') + v.toFixed(2);
const change = (r) => r.price - r.previous_close;
// the table's columns: name, cell class, value, text
const columns = [
  ['symbol', 'sym', (r) => r.symbol, String],
  ['name', 'name', (r) => r.name, String],
  ['price', 'num', (r) => r.price, money],
  ['change', 'num', change, signed],
  ['change %', 'num', (r) => (change(r) / r.previous_close) * 100, (v) => signed(v) + '%'],
  ['bid', 'num', (r) => r.bid, money],
  ['ask', 'num', (r) => r.ask, money],
  ['volume', 'num', (r) => r.volume, (v) => v.toLocaleString('en-US')],
];

let live = null;
let shown = null; // the document on screen
const stats = { events: 0, received: 0, full: 0 };

function start(format) {
  live?.close();
  shown = null;
  for (const b of document.querySelectorAll('[data-format]')) b.setAttribute('aria-pressed', b.dataset.format === format);
  const url = new URL(location.href);
  url.searchParams.set('format', format);
  history.replaceState(null, '', url);
  addLog('connect', '', `/events?format=${format}`);
  live = window.live = pollSSE('/events', { format });
  live.on('change', (doc, patch, info) => onChange(doc, patch, info, format));
  live.on('status', onStatus);
}

function onChange(doc, patch, info, format) {
  trace.push({ kind: 'change', type: info.type, id: info.id, format, at: Date.now() });
  const cells = render(shown, doc);
  shown = doc;
  count(doc, patch);
  $('version').textContent = info.id;
  $('asof').textContent = doc.as_of ?? '–';
  const what = info.type === 'snapshot' ? `whole document, ${doc.instruments?.length ?? 0} rows` : describe(cells, patch);
  addLog(info.type, info.id, what);
}

// describe summarizes the cells a patch changed.
function describe(cells, patch) {
  const ops = Array.isArray(patch) ? `${patch.length} ops` : 'merge patch';
  const shownCells = cells.filter((c) => c.name === 'price').slice(0, 3);
  const more = new Set(cells.map((c) => c.symbol)).size - shownCells.length;
  const text = shownCells.map((c) => `${c.symbol} ${c.from} → ${c.to}`).join(', ');
  return `${ops}: ${text || 'time'}${more > 0 ? `, +${more} more` : ''}`;
}

function count(doc, patch) {
  const size = (v) => new TextEncoder().encode(JSON.stringify(v)).length;
  stats.events++;
  stats.received += size(patch ?? doc);
  stats.full += size(doc);
  $('events').textContent = stats.events;
  $('received').textContent = bytes(stats.received);
  $('full').textContent = bytes(stats.full);
  $('saved').textContent = stats.received ? `${(stats.full / stats.received).toFixed(1)}× less` : '–';
}

const bytes = (n) => (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);

// render updates the table in place and flashes the cells whose text changed; it returns
// them.
function render(prev, doc) {
  const rows = doc?.instruments ?? [];
  const body = $('rows');
  if (body.rows.length !== rows.length || rows.some((r, i) => body.rows[i].dataset.symbol !== r.symbol)) {
    body.replaceChildren(...rows.map(newRow));
    prev = null;
  }
  const changed = [];
  rows.forEach((r, i) => {
    columns.forEach(([name, , value, text], j) => {
      const td = body.rows[i].cells[j];
      const v = value(r);
      const t = v === undefined || Number.isNaN(v) ? '' : text(v);
      if (td.textContent === t) return;
      if (prev) changed.push({ symbol: r.symbol, name, from: td.textContent, to: t });
      td.textContent = t;
      if (name.startsWith('change')) td.classList.toggle('pos', v > 0), td.classList.toggle('neg', v < 0);
      const old = prev?.instruments?.[i];
      if (prev) flash(td, flashClass(old && value(old), v));
    });
  });
  return changed;
}

function newRow(r) {
  const tr = document.createElement('tr');
  tr.dataset.symbol = r.symbol;
  for (const [, cls] of columns) {
    const td = document.createElement('td');
    td.className = cls;
    tr.append(td);
  }
  return tr;
}

const flashClass = (from, to) =>
  typeof from === 'number' && typeof to === 'number' && from !== to ? (to > from ? 'up' : 'down') : 'changed';

function flash(td, cls) {
  td.classList.remove('up', 'down', 'changed');
  void td.offsetWidth; // restart the animation
  td.classList.add(cls);
}

function onStatus(s) {
  trace.push({ kind: 'status', connection: s.connection, upstream: s.upstream, at: Date.now() });
  const conn = $('conn');
  conn.className = `pill ${s.connection}`;
  conn.textContent = s.connection === 'open' ? 'live' : s.connection;
  const up = $('upstream');
  const banner = $('banner');
  const wasOk = !up.classList.contains('failing');
  up.className = `pill ${s.upstream.ok ? 'ok' : 'failing'}`;
  up.textContent = s.upstream.ok ? 'upstream ok' : `upstream failing (${s.upstream.status ?? 'error'})`;
  banner.classList.toggle('show', !s.upstream.ok);
  if (!s.upstream.ok) {
    const since = s.upstream.since ? new Date(s.upstream.since).toLocaleTimeString() : '?';
    banner.textContent = `The upstream is failing (${s.upstream.status ?? ''} ${s.upstream.error ?? ''}) since ${since}: showing the last good data.`;
  }
  if (wasOk !== s.upstream.ok) addLog('upstream', '', s.upstream.ok ? 'recovered' : s.upstream.error ?? 'failing');
}

function addLog(type, id, what) {
  const li = document.createElement('li');
  li.innerHTML = '<div class="meta"><span class="type"></span><code class="id"></code><span class="time hint"></span></div><div class="what"></div>';
  li.querySelector('.type').textContent = type;
  li.querySelector('.type').classList.add(type);
  li.querySelector('.id').textContent = id;
  li.querySelector('.time').textContent = new Date().toLocaleTimeString();
  li.querySelector('.what').textContent = what;
  $('log').prepend(li);
  while ($('log').children.length > logSize) $('log').lastElementChild.remove();
}

for (const b of document.querySelectorAll('[data-format]')) {
  b.addEventListener('click', () => b.getAttribute('aria-pressed') !== 'true' && start(b.dataset.format));
}
start(new URLSearchParams(location.search).get('format') === 'merge_patch' ? 'merge_patch' : 'json_patch');
