// Shared helpers of the browser tests: launching Chromium from Debian's
// package, driving the Tincan page, and reading getStats() in the page.
// run.sh starts tincan-local and passes its address in TINCAN_URL.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const BASE_URL = process.env.TINCAN_URL ?? 'http://127.0.0.1:8080';
/** The main server's Management API (`/@connections`), on its own listener. */
export const MANAGEMENT_URL = process.env.TINCAN_MANAGEMENT_URL ?? 'http://127.0.0.1:8081';
/** A second server started with TINCAN_ROOM_MAX=2, for the room-full test. */
export const SMALL_URL = process.env.TINCAN_SMALL_URL ?? '';
export const JWT_SECRET = process.env.TINCAN_JWT_SECRET ?? '';
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** The tincan-local binary run.sh built, for tests that start their own stack. */
export const LOCAL_BIN = process.env.TINCAN_LOCAL_BIN ?? '';

const here = path.dirname(fileURLToPath(import.meta.url));
export const OUTPUT_DIR = path.resolve(here, '..', 'output');
export const WEB_SCREENSHOTS = path.resolve(here, '..', '..', 'web', 'screenshots');

const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

/** Every browser still open, so a failed test cannot leave one running. */
const openBrowsers = new Set();

/** Closes whatever a test left open (use as `afterEach(closeAll)`). */
export async function closeAll() {
  await Promise.all([...openBrowsers].map((close) => close()));
}

/** A unique name for users and rooms, so tests never collide. */
export function unique(prefix) {
  return `${prefix}${crypto.randomBytes(4).toString('hex')}`;
}

/**
 * A steady tone instead of the microphone (each page its own pitch): an init
 * script that makes getUserMedia return a Web Audio oscillator. Chromium's
 * fake microphone beeps and is silent most of the time, which is no good for
 * tests that need a speaker to be loud now.
 * @param {number} hz
 */
function toneMicrophone(hz) {
  const make = (/** @type {number} */ freq) => {
    const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      if (!constraints?.audio) return original(constraints);
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      osc.frequency.value = freq;
      const gain = ctx.createGain();
      gain.gain.value = 0.3;
      const out = ctx.createMediaStreamDestination();
      osc.connect(gain).connect(out);
      osc.start();
      await ctx.resume().catch(() => {});
      return out.stream;
    };
  };
  return `(${make.toString()})(${hz});`;
}

/**
 * Starts one Chromium with a fresh profile and opens the app. `toneHz`
 * replaces the fake microphone's beeps by a steady tone of that pitch;
 * `initScript` runs in every page before its own scripts.
 * @param {{baseUrl?: string, args?: string[], withoutArgs?: string[], viewport?: {width: number, height: number}, toneHz?: number, initScript?: string}} [options]
 */
export async function launch(options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tincan-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS.filter((a) => !(options.withoutArgs ?? []).includes(a)), ...(options.args ?? [])],
    viewport: options.viewport ?? { width: 1000, height: 900 },
    // Generous: Chromium starts slowly on a machine busy compiling.
    timeout: 60_000,
  });
  const close = async () => {
    openBrowsers.delete(close);
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  openBrowsers.add(close);
  return { ...(await openPage(context, options)), close };
}

/**
 * One Chromium shared by `count` users, each in a context of its own
 * (cookies, storage and init scripts apart): a test with many pages costs
 * one browser's processes instead of one set per page, which is what
 * keeps a six-page call responsive on two busy cores. `optionsFor(i)` are
 * user i's page options (`toneHz`, `initScript`, `viewport`, `baseUrl`);
 * `args`, the browser's extra flags (such as `toneFileArg`), apply to all.
 * @param {number} count
 * @param {(i: number) => {baseUrl?: string, viewport?: {width: number, height: number}, toneHz?: number, initScript?: string}} optionsFor
 * @param {{args?: string[]}} [browserOptions]
 */
export async function launchShared(count, optionsFor, browserOptions = {}) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...ARGS, ...(browserOptions.args ?? [])], timeout: 60_000 });
  const close = async () => {
    openBrowsers.delete(close);
    await browser.close().catch(() => {});
  };
  openBrowsers.add(close);
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const options = optionsFor(i);
      const context = await browser.newContext({ viewport: options.viewport ?? { width: 1000, height: 900 } });
      return { ...(await openPage(context, options)), close: () => context.close().catch(() => {}) };
    }),
  );
}

/**
 * The page of a fresh context, its tone and init script installed and its
 * console collected.
 * @param {import('playwright-core').BrowserContext} context
 * @param {{baseUrl?: string, toneHz?: number, initScript?: string}} options
 */
async function openPage(context, options) {
  context.setDefaultTimeout(15_000);
  if (options.toneHz) await context.addInitScript(toneMicrophone(options.toneHz));
  if (options.initScript) await context.addInitScript(options.initScript);
  const page = context.pages()[0] ?? (await context.newPage());
  /** @type {string[]} */
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  return { context, page, logs, baseUrl: options.baseUrl ?? BASE_URL };
}

/**
 * Registers an account through the HTTP API (fast path for tests that are not about registering).
 * @param {string} baseUrl
 */
export async function registerUser(baseUrl, username, password, displayName) {
  const res = await fetchFresh(`${baseUrl}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, displayName }),
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${await res.text()}`);
  return (await res.json()).user;
}

/**
 * `fetch`, sent again once if the pooled keep-alive socket it went out on
 * turns out to be closed already. A test that blocks the event loop (a
 * synchronous `tsc` run) keeps Node's pool from retiring an idle socket
 * before the server's idle timeout closes it; the request then fails
 * before anything reached the server ("other side closed"), so sending it
 * again on a new socket is safe.
 * @param {string} url
 * @param {RequestInit} init
 */
export async function fetchFresh(url, init) {
  try {
    return await fetch(url, init);
  } catch (error) {
    // A network failure (`fetch failed`), not a timeout or an answer.
    if (!(error instanceof TypeError)) throw error;
    console.log(`# ${url}: ${error.message} (${/** @type {any} */ (error).cause?.code ?? error.cause}); sent again`);
    return fetch(url, init);
  }
}

/** Opens the app and signs in through the form. */
export async function signIn(browser, username, password, hash = '') {
  const { page } = browser;
  await page.goto(`${browser.baseUrl}/${hash}`);
  await page.locator('#login-username').fill(username);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-button').click();
  await page.locator('#lobby-view').waitFor({ state: 'visible' });
}

/**
 * A registered, signed-in browser (`launch`'s options; `signInPath`: what
 * follows the app's URL on the sign-in page, e.g. `?relay=1`).
 * @param {string} name
 * @param {Parameters<typeof launch>[0] & {signInPath?: string}} [options]
 */
export async function userInBrowser(name, options = {}) {
  const browser = await launch(options);
  const username = unique(name.toLowerCase());
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  try {
    await registerUser(browser.baseUrl, username, password, name);
    await signIn(browser, username, password, options.signInPath ?? '');
  } catch (error) {
    await browser.close();
    throw error;
  }
  return { ...browser, username, password, name };
}

/**
 * Types the room and clicks Join in the lobby, then Join now on the pre-join
 * view (where an invite link lands directly); resolves once the call view shows.
 */
export async function joinRoom(browser, room) {
  const { page } = browser;
  if (!(await page.locator('#prejoin-view').isVisible())) {
    await page.locator('#room-input').fill(room);
    await page.locator('#join-button').click();
  }
  await page.locator('#join-now').click();
  try {
    await page.locator('#call-view').waitFor({ state: 'visible' });
  } catch (error) {
    // Say what the page showed instead of the call.
    const shown = await page
      .evaluate(() =>
        ['#alert', '#mic-problem', '#banner', '#call-status']
          .map((sel) => document.querySelector(sel))
          .filter((el) => el && !(/** @type {HTMLElement} */ (el).hidden))
          .map((el) => `${/** @type {HTMLElement} */ (el).id}: ${el?.textContent?.trim()}`)
          .join('; '),
      )
      .catch(() => 'the page did not answer');
    const logs = /** @type {{logs?: string[]}} */ (browser).logs?.slice(-15).join('\n') ?? '';
    throw new Error(`joining ${room}: no call view (${shown})\n${logs}`, { cause: error });
  }
}

/**
 * Inbound audio per remote peer, read from getStats() in the page.
 * @returns {Promise<Array<{peerId: string, name: string, packetsReceived: number, totalAudioEnergy: number,
 *   jitterBufferDelay: number, jitterBufferEmittedCount: number, rttMs: number | null, connectionState: string}>>}
 */
export function inboundAudio(page) {
  return page.evaluate(async () => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    const out = [];
    for (const [peerId, link] of client.peers) {
      const report = await link.pc.getStats();
      const row = {
        peerId,
        name: link.peer.displayName,
        packetsReceived: 0,
        totalAudioEnergy: 0,
        jitterBufferDelay: 0,
        jitterBufferEmittedCount: 0,
        rttMs: null,
        connectionState: link.pc.connectionState,
        signalingState: link.pc.signalingState,
        iceConnectionState: link.pc.iceConnectionState,
      };
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          row.packetsReceived = s.packetsReceived ?? 0;
          row.totalAudioEnergy = s.totalAudioEnergy ?? 0;
          row.jitterBufferDelay = s.jitterBufferDelay ?? 0;
          row.jitterBufferEmittedCount = s.jitterBufferEmittedCount ?? 0;
        }
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.currentRoundTripTime !== undefined) {
          row.rttMs = s.currentRoundTripTime * 1000;
        }
      });
      out.push(row);
    }
    return out;
  });
}

/**
 * Polls `check` until it returns a truthy value or `timeoutMs` passes.
 * @template T
 * @param {() => Promise<T>} check
 * @param {{timeoutMs?: number, intervalMs?: number, what?: string, describe?: () => Promise<string>}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(check, options = {}) {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) {
      const detail = options.describe ? `: ${await options.describe()}` : '';
      throw new Error(`timed out waiting for ${options.what ?? 'condition'}${detail}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 250));
  }
}

/**
 * Waits until the page receives audio from `names` (packets and energy
 * rising over an interval), and returns the last stats.
 */
export async function expectAudioFrom(page, names, timeoutMs = 25_000) {
  const byName = async () => new Map((await inboundAudio(page)).map((r) => [r.name, r]));
  const first = await waitFor(
    async () => {
      const rows = await byName();
      return names.every((n) => (rows.get(n)?.packetsReceived ?? 0) > 0 && (rows.get(n)?.totalAudioEnergy ?? 0) > 0) && rows;
    },
    { timeoutMs, what: `audio from ${names.join(', ')}`, describe: async () => JSON.stringify(await inboundAudio(page)) },
  );
  return waitFor(
    async () => {
      const rows = await byName();
      return (
        names.every((n) => {
          const a = first.get(n);
          const b = rows.get(n);
          return b && a && b.packetsReceived > a.packetsReceived && b.totalAudioEnergy > a.totalAudioEnergy;
        }) && rows
      );
    },
    {
      timeoutMs: 10_000,
      intervalMs: 500,
      what: `rising audio from ${names.join(', ')}`,
      describe: async () => JSON.stringify(await inboundAudio(page)),
    },
  );
}

/** Names in the participant list of a page. */
export function participantNames(page) {
  return page.locator('#participants .participant .name').allTextContents();
}

export async function screenshot(page, name) {
  fs.mkdirSync(OUTPUT_DIR, { recursive: true });
  const file = path.join(OUTPUT_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * An HS256 access token like the server's, already expired, signed with the
 * server's secret (run.sh chose it): a real "expired session".
 */
export function expiredAccessToken(user) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    sub: user.id,
    name: user.displayName,
    iat: now - 7200,
    exp: now - 3600,
    typ: 'access',
  })}`;
  const sig = crypto.createHmac('sha256', JWT_SECRET).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/** Prints one measured figure in a greppable form. */
export function report(name, value, unit) {
  const shown = typeof value === 'number' ? value.toFixed(1) : String(value);
  console.log(`MEASURE ${name}: ${shown} ${unit}`.trimEnd());
}

/** A free TCP port on 127.0.0.1 (the kernel's pick; released before use). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a tincan-local of its own with extra environment (e.g.
 * `{TINCAN_MAX_CONNECTION_SECS: '12'}`), on free loopback ports, with a
 * fresh data dir and run.sh's JWT secret; waits for /healthz. Its log goes to
 * tests/output/tincan-local-NAME.log. Call `stop()` when done.
 * @param {string} name
 * @param {Record<string, string>} [env]
 * @returns {Promise<{url: string, managementUrl: string, stop: () => Promise<void>}>}
 */
export async function startStack(name, env = {}) {
  if (!LOCAL_BIN) throw new Error('TINCAN_LOCAL_BIN is not set (run through tests/browser/run.sh)');
  const [port, turn, management] = [await freePort(), await freePort(), await freePort()];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `tincan-${name}-`));
  fs.mkdirSync(OUTPUT_DIR, { recursive: true });
  const log = fs.openSync(path.join(OUTPUT_DIR, `tincan-local-${name}.log`), 'w');
  const child = spawn(LOCAL_BIN, [], {
    env: {
      ...process.env,
      TINCAN_ADDR: `127.0.0.1:${port}`,
      TINCAN_MANAGEMENT_ADDR: `127.0.0.1:${management}`,
      TINCAN_TURN_ADDR: `127.0.0.1:${turn}`,
      TINCAN_DATA_DIR: dataDir,
      TINCAN_JWT_SECRET: JWT_SECRET,
      TINCAN_WEB_DIR: process.env.TINCAN_WEB_DIR ?? path.resolve(here, '..', '..', 'web'),
      RUST_LOG: process.env.RUST_LOG ?? 'info',
      // Every test user registers from 127.0.0.1.
      TINCAN_REGISTRATIONS_PER_ADDR: process.env.TINCAN_REGISTRATIONS_PER_ADDR ?? '0',
      ...env,
    },
    stdio: ['ignore', log, log],
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const stop = async () => {
    if (!exited) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (!exited) child.kill('SIGKILL');
    }
    fs.closeSync(log);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`tincan-local (${name}) exited; see tests/output/tincan-local-${name}.log`);
    }
    const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`tincan-local (${name}) not healthy (GET /healthz) after 90 s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, managementUrl: `http://127.0.0.1:${management}`, turn: `127.0.0.1:${turn}`, stop };
}

/**
 * Records, in the page, what the client reports: events by type with a
 * `performance.now()` stamp (`tincanApp.events`).
 * @param {import('playwright-core').Page} page
 */
export function recordClientEvents(page) {
  return page.evaluate(() => {
    const app = /** @type {any} */ (globalThis).tincanApp;
    app.events = [];
    for (const type of ['joined', 'resumed', 'resume-failed', 'peer-joined', 'peer-left', 'reconnecting', 'reconnected', 'error']) {
      app.client.addEventListener(type, (/** @type {CustomEvent} */ e) => {
        const d = e.detail ?? {};
        app.events.push({ type, at: performance.now(), code: d.code, peerId: d.peerId ?? d.peer?.peerId, ms: d.ms });
      });
    }
  });
}

/** @param {import('playwright-core').Page} page */
export function clientEvents(page) {
  return page.evaluate(() => /** @type {any[]} */ (/** @type {any} */ (globalThis).tincanApp.events));
}

/**
 * The connection ids of the page's links (one per remote peer): a link that
 * was rebuilt gets a new one.
 * @param {import('playwright-core').Page} page
 */
export function linkIds(page) {
  return page.evaluate(() =>
    [.../** @type {any} */ (globalThis).tincanApp.client.peers.values()].map((l) => `${l.peerId}/${l.localId}`),
  );
}

/**
 * What a page's client has: its mode, open connections, the SFU slots'
 * inbound audio and who the node says is in each slot.
 * @param {import('playwright-core').Page} page
 */
export function sfuState(page) {
  return page.evaluate(async () => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    const slots = [];
    if (client.sfu) {
      const report = await client.sfu.pc.getStats();
      /** @type {Map<string, any>} */
      const byMid = new Map();
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') byMid.set(s.mid, s);
      });
      for (const [i, t] of client.sfu.slotTransceivers.entries()) {
        const s = byMid.get(t.mid);
        slots.push({
          slot: i,
          peerId: client.sfu.speakers[i]?.peerId ?? null,
          packets: s?.packetsReceived ?? 0,
          energy: s?.totalAudioEnergy ?? 0,
        });
      }
    }
    return {
      mode: client.mode,
      self: client.self?.peerId ?? null,
      meshLinks: client.peers.size,
      sfuState: client.sfu?.pc.connectionState ?? null,
      slots,
    };
  });
}

const RELAY_PY = path.resolve(here, '..', 'impair', 'relay.py');

/**
 * Starts the seeded impairment relay (tests/impair/relay.py) in front of
 * `upstream` (e.g. a stack's TURN server) on 127.0.0.2, with `--control`:
 * `set(direction, spec)` changes an impairment while it runs (`set('up',
 * '')` for none) and resolves once the relay has taken it. Stopped by
 * `stop()` (its counters as it printed them), or by `closeAll()`.
 * @param {string} upstream  HOST:PORT
 * @param {{up?: string, down?: string, seed?: number}} [options]
 * @returns {Promise<{addr: string, set: (direction: 'up' | 'down', spec: string) => Promise<void>, stop: () => Promise<string>}>}
 */
export async function startImpairRelay(upstream, options = {}) {
  const args = ['-u', RELAY_PY, '--listen', '127.0.0.2:0', '--upstream', upstream, '--seed', String(options.seed ?? 7), '--control'];
  if (options.up) args.push('--up', options.up);
  if (options.down) args.push('--down', options.down);
  const child = spawn('python3', args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  /** @type {Array<() => void>} */
  let waiters = [];
  child.stdout?.on('data', (chunk) => {
    out += chunk;
    for (const wake of waiters) wake();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
    for (const wake of waiters) wake();
  });
  /** Waits until `out` matches `re` (bounded). */
  const line = (/** @type {RegExp} */ re, /** @type {string} */ what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`relay: no ${what} in 15 s: ${out}`)), 15_000);
      const check = () => {
        const m = re.exec(out);
        if (m) done(null, m);
        else if (exited) done(new Error(`relay exited: ${out}`));
      };
      const done = (/** @type {Error | null} */ error, /** @type {RegExpExecArray | undefined} */ m = undefined) => {
        clearTimeout(timer);
        waiters = waiters.filter((w) => w !== check);
        if (error) reject(error);
        else resolve(/** @type {RegExpExecArray} */ (m));
      };
      waiters.push(check);
      check();
    });
  const addr = (/** @type {RegExpExecArray} */ (await line(/^ready (\S+)$/m, 'ready line')))[1];
  let replies = 0;
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await line(/^stats .*$/m, 'stats line').catch(() => null);
    }
    return /^stats (.*)$/m.exec(out)?.[1] ?? '';
  };
  const close = async () => {
    openBrowsers.delete(close);
    await stop();
  };
  openBrowsers.add(close);
  return {
    addr,
    stop,
    async set(direction, spec) {
      replies += 1;
      child.stdin?.write(`${direction} ${spec}\n`);
      const want = replies;
      const m = await line(new RegExp(`^(?:(?:ok|error).*\\n){${want}}`, 'm'), `reply to "${direction} ${spec}"`);
      const last = m[0].trim().split('\n').pop() ?? '';
      if (!last.startsWith('ok')) throw new Error(`relay refused "${direction} ${spec}": ${last}`);
    },
  };
}

/**
 * Init script: every RTCPeerConnection of the page uses only `relayAddr`
 * as its TURN server (UDP), with the credentials the server handed out, so
 * all its media crosses the impairment relay.
 * @param {string} relayAddr
 */
export function turnThrough(relayAddr) {
  return `(() => {
    const Original = RTCPeerConnection;
    const fix = (cfg) => cfg && cfg.iceServers
      ? { ...cfg, iceServers: cfg.iceServers.filter((s) => s.username).map((s) => ({ ...s, urls: ['turn:${relayAddr}?transport=udp'] })) }
      : cfg;
    class ThroughRelay extends Original {
      constructor(cfg, ...rest) { super(fix(cfg), ...rest); }
      setConfiguration(cfg) { return super.setConfiguration(fix(cfg)); }
    }
    globalThis.RTCPeerConnection = ThroughRelay;
  })();`;
}

/**
 * A 48 kHz mono WAV of a steady sine (4 s, looped by Chromium), for
 * `--use-file-for-fake-audio-capture`: Chromium's own fake microphone then
 * plays it. Calls longer than about a minute need it: the Web Audio tone
 * of `toneHz` stops when the page's AudioContext reports a device error
 * ("The AudioContext encountered an error from the audio device"), seen
 * in headless Chromium here after 12-50 s, and its sender then goes quiet.
 * Returns the Chromium flag.
 * @param {number} hz
 */
export function toneFileArg(hz) {
  const file = path.join(os.tmpdir(), `tincan-tone-${hz}.wav`);
  if (!fs.existsSync(file)) {
    const rate = 48_000;
    const samples = rate * 4;
    const data = Buffer.alloc(44 + samples * 2);
    data.write('RIFF', 0);
    data.writeUInt32LE(36 + samples * 2, 4);
    data.write('WAVEfmt ', 8);
    data.writeUInt32LE(16, 16);
    data.writeUInt16LE(1, 20); // PCM
    data.writeUInt16LE(1, 22); // mono
    data.writeUInt32LE(rate, 24);
    data.writeUInt32LE(rate * 2, 28);
    data.writeUInt16LE(2, 32);
    data.writeUInt16LE(16, 34);
    data.write('data', 36);
    data.writeUInt32LE(samples * 2, 40);
    for (let i = 0; i < samples; i += 1) data.writeInt16LE(Math.round(9000 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
    const tmp = `${file}.${process.pid}`;
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  }
  return `--use-file-for-fake-audio-capture=${file}`;
}
