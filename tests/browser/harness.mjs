// harness.mjs holds what the Node scripts of the Go tests share: their check lines, and
// Debian's chromium driven by playwright-core with a fresh profile.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// browserFlags keep chromium to what a test needs: no GPU, sandbox, QUIC or background
// traffic. Certificates of Caddy's internal CA are accepted.
const browserFlags = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--ignore-certificate-errors',
];

// pass prints one check passed, which the Go test counts.
export function pass(check, details = {}) {
  console.log(JSON.stringify({ pass: check, ...details }));
}

// assert fails the script with message, and details when given, unless ok.
export function assert(ok, message, details) {
  if (!ok) throw new Error(`${message}${details === undefined ? '' : ': ' + JSON.stringify(details)}`);
}

// launchChromium starts the chromium at executablePath in a profile of its own, with the
// playwright-core context options given. close ends it and removes the profile.
export async function launchChromium(executablePath, options = {}) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'pollsse-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    args: browserFlags,
    timeout: 60000,
    ...options,
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

// call makes a request with node:http (fetch adds Sec-Fetch-Mode, which makes Caddy's
// admin API check an origin) and returns its status and body.
export function call(url, { method = 'GET', body, headers } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, timeout: 10000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 10s`)));
    req.on('error', reject);
    req.end(body);
  });
}
