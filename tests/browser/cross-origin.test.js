// The page works unchanged wherever it is served: here `web/` comes from a
// plain static server on one origin, with a /settings.json naming a
// tincan-local on another (as a deployed stack's bucket names its APIs),
// and that tincan-local allows the page's origin (TINCAN_CORS_ORIGINS).
// Two pages sign up, sign in and call with two-way audio, through the same
// call driver as tests/aws/smoke.sh.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeAll, launch, report, startStack } from './helpers.js';
import { runScenario } from '../aws/call-driver.mjs';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.png': 'image/png' };

/**
 * A plain static server of `web/`, with `site.settings` at /settings.json
 * and the CSP a host of the page sends (connect-src naming the API's
 * origin, `site.connectSrc`). Both are read per request, so they can be set
 * once the API's address is known.
 * @returns {Promise<{url: string, settings: any, connectSrc: string, close: () => Promise<void>}>}
 */
function staticSite() {
  const site = { url: '', settings: null, connectSrc: '', close: async () => {} };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const headers = {
      'content-security-policy': `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self' ${site.connectSrc}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'`,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (url.pathname === '/settings.json') {
      if (!site.settings) {
        res.writeHead(404, headers).end();
        return;
      }
      res.writeHead(200, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(site.settings));
      return;
    }
    const file = path.join(WEB, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
    if (!file.startsWith(WEB) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      site.url = `http://127.0.0.1:${port}`;
      site.close = () =>
        new Promise((r) => {
          server.closeAllConnections();
          server.close(() => r(undefined));
        });
      resolve(site);
    });
  });
}

/** @type {any} */
let stack = null;
/** @type {any} */
let site = null;
/** @type {any} */
let foreign = null;

before(async () => {
  // The page's site first (the API's CORS list names its origin), then the API.
  site = await staticSite();
  foreign = await staticSite();
  stack = await startStack('cross-origin', { TINCAN_CORS_ORIGINS: site.url });
  const api = new URL(stack.url);
  for (const s of [site, foreign]) {
    s.settings = { httpApiUrl: stack.url, webSocketUrl: `ws://${api.host}/ws` };
    s.connectSrc = `${stack.url} ws://${api.host}`;
  }
});

after(async () => {
  await site?.close();
  await foreign?.close();
  await stack?.stop();
});
afterEach(closeAll);

test('a page served from another origin reads /settings.json, signs up, signs in and calls', { timeout: 240_000 }, async () => {
  const result = await runScenario(site.url, 'direct');
  assert.ok(result.ok, `direct call from ${site.url} to the API at ${stack.url} failed: ${result.error}`);
  report('cross-origin page: sign-in (click to lobby)', Math.max(...result.signInMs), 'ms');
  report('cross-origin page: join to first audio', Math.max(...result.joinToAudioMs), 'ms');
});

test('an origin the API does not allow cannot sign in (CORS)', { timeout: 60_000 }, async () => {
  const browser = await launch({ baseUrl: foreign.url });
  await browser.page.goto(`${foreign.url}/`);
  await browser.page.locator('#login-username').fill('someone');
  await browser.page.locator('#login-password').fill('some-password');
  await browser.page.locator('#login-button').click();
  // The request is blocked by the browser: the page says it cannot reach the server.
  await browser.page.locator('#alert').waitFor({ state: 'visible' });
  const settings = await browser.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.settings);
  assert.equal(settings.httpApiUrl, stack.url);
});
