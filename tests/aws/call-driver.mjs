// The call driver of tests/aws/smoke.sh: headless Chromium against a
// deployed page (AppUrl) or a tincan-local, through the page itself. Every
// page signs up and signs in through the forms, then:
//
//   direct  two pages, one room, peer to peer
//   relay   two pages forced through the TURN relay (`?relay=1`)
//   sfu     five pages, one room: past the mesh size, on the media node's SFU
//
// and asserts two-way audio on every page: inbound packets and audio energy
// from getStats(), rising, from every other page (in the SFU room, on the
// slots the node fills: run it with at least 4 slots so each page hears all
// four others). It measures sign-in (click to lobby) and join to first audio
// (click on Join to the first inbound audio packet, polled every 100 ms).
//
//   node tests/aws/call-driver.mjs --app-url URL [--scenarios direct,relay,sfu] [--out DIR]
//
// writes DIR/calls.json and DIR/calls.md (default tests/output/smoke) and
// exits 1 if any scenario failed. Chromium: CHROMIUM_PATH (default
// /usr/bin/chromium), through tests/browser's playwright-core.

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { closeAll, launch, toneFileArg, unique, waitFor } from '../browser/helpers.js';

export const SCENARIOS = {
  direct: { pages: 2, relay: false, sfu: false, what: 'two pages, peer to peer' },
  relay: { pages: 2, relay: true, sfu: false, what: 'two pages, relay only (TURN)' },
  sfu: { pages: 5, relay: false, sfu: true, what: 'five pages on the SFU' },
};
const NAMES = ['Ada', 'Bob', 'Cy', 'Dee', 'Eve'];

/**
 * Every inbound audio source of a page, mesh links and SFU slots alike.
 * @param {import('playwright-core').Page} page
 */
export function audioSources(page) {
  return page.evaluate(async () => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    /** @param {RTCStatsReport} report */
    const localCandidateType = (report) => {
      let type = null;
      report.forEach((/** @type {any} */ s) => {
        // The transport's selected pair, else a nominated, succeeded one.
        const pair = s.type === 'transport' && s.selectedCandidatePairId ? report.get(s.selectedCandidatePairId) : null;
        if (pair) type = report.get(pair.localCandidateId)?.candidateType ?? type;
        else if (!type && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
          type = report.get(s.localCandidateId)?.candidateType ?? null;
        }
      });
      return type ?? 'unknown';
    };
    const out = [];
    for (const [peerId, link] of client.peers) {
      const report = await link.pc.getStats();
      const row = { via: 'mesh', peerId, packets: 0, energy: 0, candidate: localCandidateType(report), state: link.pc.connectionState };
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          row.packets = s.packetsReceived ?? 0;
          row.energy = s.totalAudioEnergy ?? 0;
        }
      });
      out.push(row);
    }
    if (client.sfu) {
      const report = await client.sfu.pc.getStats();
      const candidate = localCandidateType(report);
      /** @type {Map<string, any>} */
      const byMid = new Map();
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') byMid.set(s.mid, s);
      });
      for (const [i, t] of client.sfu.slotTransceivers.entries()) {
        const s = byMid.get(t.mid);
        const peerId = client.sfu.speakers[i]?.peerId ?? null;
        if (!peerId) continue;
        out.push({ via: 'sfu', peerId, packets: s?.packetsReceived ?? 0, energy: s?.totalAudioEnergy ?? 0, candidate, state: client.sfu.pc.connectionState });
      }
    }
    return { mode: client.mode, self: client.self?.peerId ?? null, sources: out };
  });
}

/**
 * Signs a new user up through the register form, signs out, and signs in
 * through the login form; returns the sign-in time.
 * @param {{page: import('playwright-core').Page}} browser
 * @param {string} url the page (with its query)
 * @param {string} name
 */
async function signUpAndIn(browser, url, name) {
  const { page } = browser;
  const username = unique(name.toLowerCase());
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  await page.goto(url);
  await page.locator('#register-username').fill(username);
  await page.locator('#register-display-name').fill(name);
  await page.locator('#register-password').fill(password);
  await page.locator('#register-button').click();
  await page.locator('#lobby-view').waitFor({ state: 'visible', timeout: 30_000 });
  await page.locator('#account-button').click();
  await page.locator('#sign-out').click();
  await page.locator('#login-username').waitFor({ state: 'visible' });
  await page.locator('#login-username').fill(username);
  await page.locator('#login-password').fill(password);
  const t0 = performance.now();
  await page.locator('#login-button').click();
  await page.locator('#lobby-view').waitFor({ state: 'visible', timeout: 30_000 });
  return performance.now() - t0;
}

/**
 * Runs one scenario; never throws: the result says what failed.
 * @param {string} appUrl
 * @param {keyof typeof SCENARIOS} name
 */
export async function runScenario(appUrl, name) {
  const spec = SCENARIOS[name];
  const result = { scenario: name, what: spec.what, pages: spec.pages, ok: false, error: null, signInMs: [], joinToAudioMs: [], paths: [] };
  const room = unique(`smoke-${name}-`);
  const base = appUrl.replace(/\/+$/, '');
  const url = `${base}/${spec.relay ? '?relay=1' : ''}`;
  /** @type {any[]} */
  const pages = [];
  try {
    for (let i = 0; i < spec.pages; i += 1) {
      // Chromium's fake device playing a tone file: the Web Audio tone stops
      // after 12-50 s in headless Chromium here, and the SFU call lasts longer.
      const browser = await launch({ baseUrl: base, args: [toneFileArg(300 + 110 * i)] });
      const who = { ...browser, name: NAMES[i] };
      pages.push(who);
      result.signInMs.push(await signUpAndIn(who, url, who.name));
    }
    for (const who of pages) {
      await who.page.locator('#room-input').fill(room);
      who.joinedAt = performance.now();
      await who.page.locator('#join-button').click();
      await who.page.locator('#join-now').click();
      await who.page.locator('#call-view').waitFor({ state: 'visible', timeout: 30_000 });
    }
    // Join to first audio: the first inbound packet on any source.
    await Promise.all(
      pages.map(async (who) => {
        await waitFor(async () => (await audioSources(who.page)).sources.some((s) => s.packets > 0), {
          timeoutMs: 60_000,
          intervalMs: 100,
          what: `${who.name}: first audio`,
          describe: async () => JSON.stringify(await audioSources(who.page)),
        });
        result.joinToAudioMs.push(performance.now() - who.joinedAt);
      }),
    );
    const ids = await Promise.all(pages.map(async (who) => (await audioSources(who.page)).self));
    for (const [i, who] of pages.entries()) {
      const others = ids.filter((_, j) => j !== i).sort();
      // Every other page heard, with energy, on the path the scenario wants.
      const heard = (/** @type {any} */ state) =>
        state.sources.filter((s) => s.packets > 0 && s.energy > 0 && (spec.sfu ? s.via === 'sfu' : s.via === 'mesh'));
      const first = await waitFor(
        async () => {
          const state = await audioSources(who.page);
          const peers = [...new Set(heard(state).map((s) => s.peerId))].sort();
          const modeOk = spec.sfu ? state.mode === 'sfu' : state.mode === 'mesh';
          return modeOk && JSON.stringify(peers) === JSON.stringify(others) && state;
        },
        {
          timeoutMs: 60_000,
          what: `${who.name} hearing ${others.length} other page(s) (${spec.sfu ? 'SFU' : 'mesh'})`,
          describe: async () => JSON.stringify(await audioSources(who.page)),
        },
      );
      // And it keeps flowing.
      await new Promise((r) => setTimeout(r, 1000));
      const later = await audioSources(who.page);
      for (const a of heard(first)) {
        const b = later.sources.find((s) => s.via === a.via && s.peerId === a.peerId);
        if (!b || b.packets <= a.packets || b.energy <= a.energy) {
          throw new Error(`${who.name}: audio from ${a.peerId} stalled: ${JSON.stringify(later)}`);
        }
      }
      const candidates = [...new Set(heard(first).map((s) => s.candidate))];
      if (spec.relay && candidates.some((c) => c !== 'relay')) {
        throw new Error(`${who.name}: relay-only call not relayed (local candidates ${candidates.join(', ')})`);
      }
      result.paths.push(`${spec.sfu ? 'SFU, ' : ''}${candidates.join('/')}`);
    }
    result.ok = true;
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    for (const who of pages) {
      const logs = (who.logs ?? []).slice(-5).join(' | ');
      if (logs) result.error += `\n  ${who.name} console: ${logs}`;
    }
  } finally {
    await closeAll();
  }
  return result;
}

/** @param {number[]} xs */
function stats(xs) {
  if (xs.length === 0) return 'n/a';
  const sorted = [...xs].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return `${Math.round(median)} / ${Math.round(sorted[sorted.length - 1])}`;
}

/** The results as a Markdown table (the smoke report's "Calls" section). */
export function markdown(results) {
  const lines = [
    '| call | pages | result | sign-in ms (median / max) | join to first audio ms (median / max) | path |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.what} | ${r.pages} | ${r.ok ? 'two-way audio on every page' : 'FAILED'} | ${stats(r.signInMs)} | ${stats(r.joinToAudioMs)} | ${[...new Set(r.paths)].join('; ') || 'n/a'} |`,
    );
  }
  const failures = results.filter((r) => !r.ok);
  if (failures.length) {
    lines.push('', ...failures.map((r) => `- **${r.scenario} failed**: ${String(r.error).replace(/\n/g, '<br>')}`));
  }
  return lines.join('\n');
}

/**
 * Runs `scenarios` against `appUrl` one after the other.
 * @param {string} appUrl
 * @param {Array<keyof typeof SCENARIOS>} scenarios
 */
export async function runAll(appUrl, scenarios) {
  const results = [];
  for (const name of scenarios) {
    const started = Date.now();
    const r = await runScenario(appUrl, name);
    console.error(`call-driver: ${name}: ${r.ok ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s${r.ok ? '' : `: ${r.error}`}`);
    results.push(r);
  }
  return results;
}

async function main() {
  const args = process.argv.slice(2);
  const get = (flag, dflt) => {
    const i = args.indexOf(flag);
    return i >= 0 && args[i + 1] ? args[i + 1] : dflt;
  };
  const appUrl = get('--app-url', process.env.APP_URL);
  if (!appUrl) {
    console.error('usage: call-driver.mjs --app-url URL [--scenarios direct,relay,sfu] [--out DIR]');
    process.exit(2);
  }
  const scenarios = get('--scenarios', 'direct,relay,sfu').split(',').filter(Boolean);
  for (const s of scenarios) {
    if (!(s in SCENARIOS)) {
      console.error(`call-driver: unknown scenario ${s} (${Object.keys(SCENARIOS).join(', ')})`);
      process.exit(2);
    }
  }
  const here = path.dirname(fileURLToPath(import.meta.url));
  const out = get('--out', path.resolve(here, '..', 'output', 'smoke'));
  fs.mkdirSync(out, { recursive: true });
  const results = await runAll(appUrl, /** @type {any} */ (scenarios));
  fs.writeFileSync(path.join(out, 'calls.json'), JSON.stringify(results, null, 2));
  fs.writeFileSync(path.join(out, 'calls.md'), `${markdown(results)}\n`);
  console.log(markdown(results));
  process.exit(results.every((r) => r.ok) ? 0 : 1);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
