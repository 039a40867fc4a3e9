// expiry.mjs opens, in chromium, a stream of a route with `expires` read from a cookie,
// and checks what the page sees when the access ends: the core client (EventSource) and
// the fetch transport both report `unauthorized` and stop, after the stream's last event
// and one refused reconnection at most. It prints one JSON line per check passed.
//
// Usage: node tests/browser/expiry.mjs <settings.json>
//
// settings: {base, chromium}
import { readFileSync } from 'node:fs';
import { assert, launchChromium, pass } from './harness.mjs';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// expire opens the stream with the client part given, its access ending in 2 s, and
// checks that the page reports `unauthorized` within 4 s of that and asks no more.
async function expire(context, part) {
  const requests = [];
  context.on('request', (r) => r.url().includes('/timed') && requests.push(Date.now()));
  const page = await context.newPage();
  await page.goto(`${settings.base}/blank`, { timeout: 15000 });
  const at = Math.floor(Date.now() / 1000) + 3;
  await page.evaluate(
    async ([part, at]) => {
      document.cookie = `exp=${at}; path=/`;
      const { pollSSE } = await import(part);
      window.statuses = [];
      window.live = pollSSE('/timed');
      window.live.on('status', (s) => window.statuses.push(s.connection));
    },
    [part, at],
  );
  await page.waitForFunction(() => window.live.document !== undefined, null, { timeout: 15000 });
  await page.waitForFunction(() => window.live.status.connection === 'unauthorized', null, { timeout: 10000, polling: 50 });
  const late = Date.now() - at * 1000;
  await new Promise((r) => setTimeout(r, 3000));
  const statuses = await page.evaluate(() => window.statuses);
  const reconnects = requests.filter((t) => t >= at * 1000 - 200).length;
  assert(late <= 4000, 'the expiry was reported late', { late });
  assert(reconnects <= 1, 'the client went on reconnecting after its access expired', { reconnects });
  assert(statuses.at(-1) === 'unauthorized' && !statuses.includes('closed'), 'the client did not end unauthorized', { statuses });
  pass(`${part}: an expired stream is reported as unauthorized and not retried`, { late, reconnects, statuses });
  await page.close();
}

const { context, close } = await launchChromium(settings.chromium);
try {
  await expire(context, '/poll-sse.js');
  await expire(context, '/poll-sse-fetch.js');
} finally {
  await close();
}
