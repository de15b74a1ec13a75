// The SFU's receiver reports carry the loss it really sees on a sender's
// uplink (issue: senders through the SFU adapted to nothing): a speaker
// whose whole TURN leg crosses the seeded impairment relay
// (tests/impair/relay.py, 10 % random loss from the browser towards the
// node) reads about 10 % lost in its own `remote-inbound-rtp`, which is what
// drives Opus's in-band FEC and the sender's bitrate. A stack of its own,
// TINCAN_MESH_MAX=1, so two pages are on the SFU.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { closeAll, joinRoom, report, sfuState, startImpairRelay, startStack, turnThrough, unique, userInBrowser, waitFor } from './helpers.js';

/** @type {{url: string, turn: string, stop: () => Promise<void>} | null} */
let stack = null;

before(async () => {
  stack = /** @type {any} */ (await startStack('sfu-uplink-loss', { TINCAN_MESH_MAX: '1' }));
});
after(async () => {
  await stack?.stop();
});
afterEach(closeAll);

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
  const { addr: relayAddr } = await startImpairRelay(s.turn, { up: 'loss=0.1' });
  const room = unique('uplink-');
  const speaker = await toneUser('Sam', 440, { query: '?relay=1', init: turnThrough(relayAddr) });
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
