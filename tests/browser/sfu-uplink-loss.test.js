// The SFU's receiver reports carry the loss it really sees on a sender's
// uplink (issue: senders through the SFU adapted to nothing): a speaker
// whose whole TURN leg crosses the seeded impairment relay
// (tests/impair/relay.py, 10 % random loss from the browser towards the
// node) reads about 10 % lost in its own `remote-inbound-rtp`, which is what
// drives Opus's in-band FEC and the sender's bitrate. A stack of its own,
// TINCAN_MESH_MAX=1, so two pages are on the SFU.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { closeAll, joinRoom, report, sfuState, startStack, unique, userInBrowser, waitFor } from './helpers.js';

const RELAY_PY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'impair', 'relay.py');

/** @type {{url: string, turn: string, stop: () => Promise<void>} | null} */
let stack = null;
/** @type {import('node:child_process').ChildProcess | null} */
let relay = null;

before(async () => {
  stack = /** @type {any} */ (await startStack('sfu-uplink-loss', { TINCAN_MESH_MAX: '1' }));
});
after(async () => {
  relay?.kill('SIGTERM');
  await stack?.stop();
});
afterEach(closeAll);

/** Starts the relay in front of the stack's TURN server; resolves to its address. */
function startRelay(upstream, up) {
  const child = spawn('python3', ['-u', RELAY_PY, '--listen', '127.0.0.2:0', '--upstream', upstream, '--seed', '7', '--up', up], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  relay = child;
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`relay not ready: ${out}`)), 15_000);
    child.stdout?.on('data', (chunk) => {
      out += chunk;
      const ready = /^ready (\S+)$/m.exec(out);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`relay exited (${code}): ${out}`)));
  });
}

/**
 * Init script: every RTCPeerConnection of the page uses only the relay as
 * its TURN server (UDP), with the credentials the server handed out.
 * @param {string} relayAddr
 */
function throughRelay(relayAddr) {
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

/** A signed-in page of the stack whose microphone is a tone. */
const toneUser = (name, hz, { query = '', init = '' } = {}) =>
  userInBrowser(name, { baseUrl: /** @type {any} */ (stack).url, toneHz: hz, signInPath: query, initScript: init || undefined });

/** What the speaker's SFU link reads about its own audio at the node. */
function uplinkReport(page) {
  return page.evaluate(async () => {
    const sfu = /** @type {any} */ (globalThis).tincanApp.client.sfu;
    if (!sfu) return null;
    let out = null;
    (await sfu.pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'remote-inbound-rtp' && s.kind === 'audio' && (s.packetsLost ?? 0) >= (out?.packetsLost ?? 0)) {
        out = { fractionLost: s.fractionLost ?? 0, packetsLost: s.packetsLost ?? 0, rtt: s.roundTripTime ?? null };
      }
    });
    return out;
  });
}

test('through the SFU, 10 % loss on a sender\'s uplink shows in its own remote-inbound-rtp', { timeout: 180_000 }, async () => {
  const s = /** @type {any} */ (stack);
  const relayAddr = await startRelay(s.turn, 'loss=0.1');
  const room = unique('uplink-');
  const speaker = await toneUser('Sam', 440, { query: '?relay=1', init: throughRelay(relayAddr) });
  const listener = await toneUser('Lou', 660);
  await joinRoom(speaker, room);
  await joinRoom(listener, room);
  await waitFor(
    async () => {
      const st = await sfuState(listener.page);
      return st.mode === 'sfu' && st.slots.some((x) => x.packets > 100 && x.energy > 0);
    },
    { timeoutMs: 45_000, what: 'the listener hearing the speaker through the SFU', describe: async () => JSON.stringify(await sfuState(listener.page)) },
  );
  // Receiver reports come about once a second: average a few.
  const seen = [];
  await waitFor(
    async () => {
      const r = await uplinkReport(speaker.page);
      if (r) seen.push(r);
      return seen.length >= 8 && seen[seen.length - 1].packetsLost > 20;
    },
    {
      timeoutMs: 60_000,
      intervalMs: 1000,
      what: "the speaker's remote-inbound-rtp reporting loss",
      describe: async () =>
        JSON.stringify({
          seen: seen.slice(-3),
          stats: await speaker.page.evaluate(async () => {
            const sfu = /** @type {any} */ (globalThis).tincanApp.client.sfu;
            const out = [];
            if (sfu) (await sfu.pc.getStats()).forEach((/** @type {any} */ x) => { if (/rtp|transport|pair/.test(x.type)) out.push(x); });
            return out;
          }),
        }),
    },
  );
  const mean = seen.slice(-8).reduce((sum, r) => sum + r.fractionLost, 0) / 8;
  report('uplink loss the sender reads back through the SFU (10 % injected)', Math.round(mean * 1000) / 10, '%');
  assert.ok(mean > 0.04 && mean < 0.18, `fraction lost near 10 %: ${mean} (${JSON.stringify(seen.slice(-8))})`);
});
