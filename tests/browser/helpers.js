// Shared helpers of the browser tests: launching Chromium from Debian's
// package, driving the Tincan page, and reading getStats() in the page.
// run.sh starts tincan-local and passes its address in TINCAN_URL.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const BASE_URL = process.env.TINCAN_URL ?? 'http://127.0.0.1:8080';
/** The main server's Management API (`/@connections`), on its own listener. */
export const MANAGEMENT_URL = process.env.TINCAN_MANAGEMENT_URL ?? 'http://127.0.0.1:8081';
/** A second server started with TINCAN_ROOM_MAX=2, for the room-full test. */
export const SMALL_URL = process.env.TINCAN_SMALL_URL ?? '';
export const JWT_SECRET = process.env.TINCAN_JWT_SECRET ?? '';
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

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
 * Starts one Chromium with a fresh profile and opens the app.
 * @param {{baseUrl?: string, args?: string[], withoutArgs?: string[], viewport?: {width: number, height: number}}} [options]
 */
export async function launch(options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tincan-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS.filter((a) => !(options.withoutArgs ?? []).includes(a)), ...(options.args ?? [])],
    viewport: options.viewport ?? { width: 1000, height: 900 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  /** @type {string[]} */
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  const close = async () => {
    openBrowsers.delete(close);
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  openBrowsers.add(close);
  return { context, page, logs, close, baseUrl: options.baseUrl ?? BASE_URL };
}

/**
 * Registers an account through the HTTP API (fast path for tests that are not about registering).
 * @param {string} baseUrl
 */
export async function registerUser(baseUrl, username, password, displayName) {
  const res = await fetch(`${baseUrl}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, displayName }),
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${await res.text()}`);
  return (await res.json()).user;
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

/** A registered, signed-in browser. */
export async function userInBrowser(name, options = {}) {
  const browser = await launch(options);
  const username = unique(name.toLowerCase());
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  try {
    await registerUser(browser.baseUrl, username, password, name);
    await signIn(browser, username, password);
  } catch (error) {
    await browser.close();
    throw error;
  }
  return { ...browser, username, password, name };
}

/** Types the room and clicks Join; resolves once the call view shows. */
export async function joinRoom(browser, room) {
  const { page } = browser;
  await page.locator('#room-input').fill(room);
  await page.locator('#join-button').click();
  await page.locator('#call-view').waitFor({ state: 'visible' });
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
