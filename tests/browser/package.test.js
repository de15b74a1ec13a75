// The client library as a package: the library and the page type-check
// strictly from their JSDoc; `npm pack` makes a tarball whose declaration
// files a small TypeScript consumer compiles against (`tsc --noEmit`, module
// resolution through the package's `exports`) and against which mistakes
// (a misspelt event name, a wrong error code, a wrong detail) do NOT compile;
// that consumer, compiled and loaded in Chromium with an import map pointing
// at the unpacked tarball, places a two-way call; and the README's quick
// start, taken from the packed README as it is, runs in two pages and in
// five (the fifth moves the room to the SFU) and every page hears every
// other through the client's own playback. Run through run.sh.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { launch, registerUser, expectAudioFrom, unique, closeAll, waitFor, report, BASE_URL } from './helpers.js';

afterEach(closeAll);

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, '..', '..', 'web');
const bin = path.join(here, 'node_modules', '.bin');
const tsc = path.join(bin, 'tsc');
/** @type {string} */ let tmp;
/** @type {string} */ let consumer;

/**
 * Runs a command that must fail; returns its exit status and output.
 * @returns {{status: number, output: string}}
 */
function runFailing(file, args, cwd) {
  try {
    const out = execFileSync(file, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 90_000 });
    return { status: 0, output: out };
  } catch (error) {
    return { status: error.status ?? -1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` };
  }
}

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

test('tsc --strict refuses a misspelt event, a wrong error code and a wrong detail', { timeout: 120_000 }, () => {
  packAndBuildConsumer();
  const options = ['--strict', '--noEmit', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2023,dom,dom.iterable'];
  for (const [file, expected] of [
    ['misspelt-event.ts', /error TS2345: Argument of type '"peer-joind"' is not assignable to parameter of type 'keyof TincanEventMap'/],
    ['wrong-code.ts', /error TS2367: This comparison appears to be unintentional because the types 'ErrorCode' and '"room-ful"' have no overlap/],
    ['wrong-detail.ts', /error TS2339: Property 'participant' does not exist on type '\{ peerId: string; muted: boolean; \}'/],
  ]) {
    const { status, output } = runFailing(tsc, [...options, path.join('mistakes', file)], consumer);
    assert.notEqual(status, 0, `${file} compiled, but it must not:\n${output}`);
    assert.match(output, expected, `${file}: tsc failed for another reason:\n${output}`);
  }
});

/**
 * A microphone that takes turns: page `index` of `count` plays its tone for
 * 1.5 s in every `count` x 1.5 s (by the wall clock, so pages alternate) and
 * is silent otherwise. The SFU forwards the loudest three, so in a room of
 * five each one is heard in its turn.
 */
function turnTakingMicrophone(index, count, hz) {
  const make = (/** @type {number} */ i, /** @type {number} */ n, /** @type {number} */ freq) => {
    navigator.mediaDevices.getUserMedia = async () => {
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      osc.frequency.value = freq;
      const gain = ctx.createGain();
      gain.gain.value = 0;
      const out = ctx.createMediaStreamDestination();
      osc.connect(gain).connect(out);
      osc.start();
      setInterval(() => {
        gain.gain.value = Math.floor(Date.now() / 1500) % n === i ? 0.3 : 0;
      }, 50);
      await ctx.resume().catch(() => {});
      return out.stream;
    };
  };
  return `(${make.toString()})(${index}, ${count}, ${hz});`;
}

/** The README's quick-start block, from the packed README. */
function quickStart() {
  const readme = fs.readFileSync(path.join(consumer, 'node_modules', 'tincan-client', 'README.md'), 'utf8');
  const match = /<!-- quick-start[^>]*-->\s*```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(match, 'the README has a quick-start block');
  return match[1];
}

/**
 * The quick start for one page: the README's code with this stack's URL,
 * the page's account and the room put in for the example's, then one line
 * that hands the client to the test.
 */
function quickStartFor(code, { username, password, room }) {
  let out = code;
  for (const [from, to] of [
    ["'https://calls.example.com'", JSON.stringify(BASE_URL)],
    ["'ada'", JSON.stringify(username)],
    ["'correct horse'", JSON.stringify(password)],
    ["'standup'", JSON.stringify(room)],
  ]) {
    assert.equal(out.split(from).length, 2, `the quick start names ${from} once`);
    out = out.replace(from, to);
  }
  return `${out}\nglobalThis.quickstart = { client };\n`;
}

/**
 * What a quick-start page hears from each other participant: inbound audio
 * energy per participant (over its mesh link, or over the SFU slot the node
 * puts them in, sampled every 100 ms), and whether the client's own
 * `<audio>` elements are playing the streams that carry it.
 */
function startListening(page) {
  return page.evaluate(() => {
    const client = /** @type {any} */ (globalThis).quickstart.client;
    const heard = /** @type {Record<string, number>} */ ({});
    const last = new Map();
    const w = { heard, mode: client.mode, samples: 0 };
    /** @type {any} */ (globalThis).listening = w;
    setInterval(async () => {
      w.mode = client.mode;
      const add = (/** @type {string} */ id, /** @type {string} */ key, /** @type {number} */ energy) => {
        const before = last.get(key);
        last.set(key, energy);
        if (before !== undefined && energy > before && id) heard[id] = (heard[id] ?? 0) + (energy - before);
      };
      if (client.sfu) {
        const report = await client.sfu.pc.getStats();
        /** @type {Map<string, any>} */
        const byMid = new Map();
        report.forEach((/** @type {any} */ s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') byMid.set(s.mid, s);
        });
        for (const [i, t] of client.sfu.slotTransceivers.entries()) {
          add(client.sfu.speakers[i]?.peerId ?? '', `sfu-${i}`, byMid.get(t.mid)?.totalAudioEnergy ?? 0);
        }
      }
      for (const [id, link] of client.peers) {
        const report = await link.pc.getStats();
        report.forEach((/** @type {any} */ s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') add(id, `mesh-${link.localId}`, s.totalAudioEnergy ?? 0);
        });
      }
      w.samples += 1;
    }, 100);
  });
}

/** Per other participant: energy heard since `startListening`, and the client's playback. */
function hearing(page) {
  return page.evaluate(() => {
    const client = /** @type {any} */ (globalThis).quickstart.client;
    const w = /** @type {any} */ (globalThis).listening;
    const streams = new Set([...client.participants.values()].map((/** @type {any} */ p) => p.stream).filter(Boolean));
    const elements = client.audioElements.map((/** @type {HTMLAudioElement} */ el) => ({
      playing: !el.paused && el.currentTime > 0,
      carries: streams.has(el.srcObject),
    }));
    return {
      mode: client.mode,
      self: client.self?.peerId ?? null,
      participants: [...client.participants.keys()].sort(),
      heard: w.heard,
      elements,
    };
  });
}

/** `count` pages run the quick start in one room; each must hear all the others. */
async function quickStartCall(count, room) {
  packAndBuildConsumer();
  const code = quickStart();
  const pages = [];
  for (let i = 0; i < count; i += 1) {
    const name = `Q${i}`;
    const username = unique(`qs${i}-`);
    const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
    await registerUser(BASE_URL, username, password, name);
    const browser = await launch({ args: ['--disable-features=LocalNetworkAccessChecks'] });
    await browser.context.addInitScript(turnTakingMicrophone(i, count, 300 + 110 * i));
    const script = quickStartFor(code, { username, password, room });
    await browser.page.route(`${BASE_URL}/quickstart/**`, (route) => {
      const rel = decodeURIComponent(new URL(route.request().url()).pathname.slice('/quickstart/'.length));
      if (rel === 'index.html') {
        return route.fulfill({
          status: 200,
          contentType: 'text/html',
          body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>quick start</title>
<script type="importmap">{"imports": {"tincan-client": "./node_modules/tincan-client/tincan-client.js"}}</script>
<script type="module" src="./quickstart.js"></script></head><body><p>quick start</p></body></html>`,
        });
      }
      if (rel === 'quickstart.js') return route.fulfill({ status: 200, contentType: 'text/javascript', body: script });
      const file = path.join(consumer, rel);
      if (!rel.startsWith('node_modules/tincan-client/') || !file.startsWith(consumer) || !fs.existsSync(file)) {
        return route.fulfill({ status: 404, body: 'not found' });
      }
      return route.fulfill({ status: 200, contentType: 'text/javascript', body: fs.readFileSync(file) });
    });
    await browser.page.goto(`${BASE_URL}/quickstart/index.html`);
    await waitFor(() => browser.page.evaluate(() => Boolean(/** @type {any} */ (globalThis).quickstart)), {
      timeoutMs: 30_000,
      what: `${name} joined with the quick start`,
      describe: async () => browser.logs.join('\n'),
    });
    pages.push({ ...browser, name });
  }
  const ids = await Promise.all(pages.map((p) => p.page.evaluate(() => /** @type {any} */ (globalThis).quickstart.client.self.peerId)));
  const mode = count > 4 ? 'sfu' : 'mesh';
  // Listening starts once the last page is in (and, past four, the room is on the SFU).
  for (const p of pages) {
    await waitFor(() => p.page.evaluate((m) => /** @type {any} */ (globalThis).quickstart.client.mode === m, mode), {
      timeoutMs: 30_000,
      what: `${p.name} in ${mode} mode`,
    });
  }
  await Promise.all(pages.map((p) => startListening(p.page)));
  const started = Date.now();
  for (const [i, p] of pages.entries()) {
    const others = ids.filter((_, j) => j !== i).sort();
    const h = await waitFor(
      async () => {
        const s = await hearing(p.page);
        const ok =
          JSON.stringify(s.participants) === JSON.stringify(others) &&
          others.every((id) => (s.heard[id] ?? 0) > 0) &&
          s.elements.length > 0 &&
          s.elements.every((e) => e.playing) &&
          s.elements.some((e) => e.carries);
        return ok && s;
      },
      {
        timeoutMs: 60_000,
        what: `${p.name} hearing the ${count - 1} others through the client's playback`,
        describe: async () => `${JSON.stringify(await hearing(p.page))}\n${p.logs.slice(-20).join('\n')}`,
      },
    );
    assert.equal(h.mode, mode);
  }
  report(`quick start, ${count} pages: every page heard every other after`, (Date.now() - started) / 1000, 's');
}

test('the README quick start, as packed, in two pages: each hears the other', { timeout: 180_000 }, async () => {
  await quickStartCall(2, unique('qs2-'));
});

test('the README quick start, as packed, in five pages (the room moves to the SFU): each hears the four others', { timeout: 300_000 }, async () => {
  await quickStartCall(5, unique('qs5-'));
});
