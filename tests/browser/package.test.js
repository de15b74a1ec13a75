// The client library as a package: the library and the page type-check
// strictly from their JSDoc; `npm pack` makes a tarball whose declaration
// files a small TypeScript consumer compiles against (`tsc --noEmit`, module
// resolution through the package's `exports`); and that consumer, compiled
// and loaded in Chromium with an import map pointing at the unpacked
// tarball, places a two-way call. Run through run.sh.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { launch, registerUser, expectAudioFrom, unique, closeAll, BASE_URL } from './helpers.js';

afterEach(closeAll);

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, '..', '..', 'web');
const bin = path.join(here, 'node_modules', '.bin');
const tsc = path.join(bin, 'tsc');
/** @type {string} */ let tmp;
/** @type {string} */ let consumer;

/** Runs a command; on failure the assertion shows its output. */
function run(file, args, cwd) {
  try {
    return execFileSync(file, args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 90_000,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, npm_config_update_notifier: 'false' },
    });
  } catch (error) {
    assert.fail(`${path.basename(file)} ${args.join(' ')} failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
  }
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tincan-package-'));
  consumer = path.join(tmp, 'consumer');
  fs.cpSync(path.join(here, 'consumer'), consumer, {
    recursive: true,
    filter: (src) => !/(node_modules|out)$/.test(src),
  });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('the library and the page type-check with tsc --checkJs --strict', { timeout: 120_000 }, () => {
  run(tsc, ['-p', web], web);
});

/** Packs the package and builds the consumer against it, once per run. */
let packed = false;
function packAndBuildConsumer() {
  if (packed) return;
  const out = run('npm', ['pack', '--json', '--pack-destination', tmp], web);
  const [{ filename, files }] = JSON.parse(out.slice(out.indexOf('[')));
  const names = files.map((/** @type {{path: string}} */ f) => f.path);
  for (const expected of ['package.json', 'README.md', 'tincan-client.js', 'tincan/peer.js', 'types/tincan-client.d.ts']) {
    assert.ok(names.includes(expected), `${expected} in the tarball (${names.join(', ')})`);
  }
  assert.ok(!names.some((n) => n.startsWith('app')), 'the page is not part of the package');
  const installed = path.join(consumer, 'node_modules', 'tincan-client');
  fs.mkdirSync(installed, { recursive: true });
  run('tar', ['-xzf', path.join(tmp, filename), '-C', installed, '--strip-components=1'], tmp);
  run(tsc, ['-p', consumer, '--noEmit'], consumer);
  run(tsc, ['-p', consumer, '--noEmit', 'false'], consumer);
  assert.ok(fs.existsSync(path.join(consumer, 'out', 'main.js')));
  packed = true;
}

test('npm pack makes a typed package a TypeScript consumer compiles against', { timeout: 120_000 }, () => {
  packAndBuildConsumer();
});

test('the packed package places a two-way call in Chromium', { timeout: 120_000 }, async () => {
  packAndBuildConsumer();
  const room = unique('pkg-');
  const people = [];
  for (const name of ['Ada', 'Bob']) {
    const username = unique(name.toLowerCase());
    const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
    await registerUser(BASE_URL, username, password, name);
    // The consumer is served under the app's origin (the API is same-origin),
    // from the test: a routed response has no address, so Chromium's Local
    // Network Access checks would take the page for a public one and block its
    // requests to 127.0.0.1.
    const browser = await launch({ args: ['--disable-features=LocalNetworkAccessChecks'] });
    await browser.page.route(`${BASE_URL}/consumer/**`, (route) => {
      const rel = decodeURIComponent(new URL(route.request().url()).pathname.slice('/consumer/'.length));
      const file = path.join(consumer, rel);
      if (!file.startsWith(consumer) || !fs.existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
      const type = file.endsWith('.html') ? 'text/html' : 'text/javascript';
      return route.fulfill({ status: 200, contentType: type, body: fs.readFileSync(file) });
    });
    await browser.page.goto(`${BASE_URL}/consumer/index.html`);
    await browser.page.waitForFunction(() => typeof (/** @type {any} */ (globalThis).placeCall) === 'function');
    people.push({ ...browser, username, password, name });
  }
  const [ada, bob] = people;
  const call = (/** @type {any} */ p) =>
    p.page
      .evaluate(([u, pw, r]) => /** @type {any} */ (globalThis).placeCall(u, pw, r), [p.username, p.password, room])
      .catch((/** @type {Error} */ error) => assert.fail(`${p.name}: ${error.message}\n${p.logs.join('\n')}`));
  const first = await call(ada);
  assert.deepEqual(first.others, []);
  const second = await call(bob);
  assert.deepEqual(second.others, ['Ada']);
  await expectAudioFrom(ada.page, ['Bob']);
  await expectAudioFrom(bob.page, ['Ada']);
});
