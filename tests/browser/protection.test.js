// Loss protection follows the link (web/tincan/protection.js): a sender
// whose whole TURN leg crosses the seeded impairment relay
// (tests/impair/relay.py) raises its protection when 15 % of what it sends
// is lost, and lowers it again once the loss stops (the relay is told so
// with a `--control` line while the call goes on). Checked on the event,
// and on what Chromium really does: RED first in the applied description
// (the page asks for `red: 'auto'`), the Opus `ptime` there, the sender's
// `maxBitrate` read back with its outbound `targetBitrate`, and the packet
// rate of its outbound RTP. The listener hears the speaker throughout.
// A stack of its own, for its TURN address.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { opusPtime } from '../../web/tincan/opus.js';
import {
  closeAll,
  expectAudioFrom,
  joinRoom,
  report,
  startImpairRelay,
  startStack,
  turnThrough,
  unique,
  userInBrowser,
  waitFor,
} from './helpers.js';

/** @type {{url: string, turn: string, stop: () => Promise<void>} | null} */
let stack = null;

before(async () => {
  stack = /** @type {any} */ (await startStack('protection'));
});
after(async () => {
  await stack?.stop();
});
afterEach(closeAll);

/** Records every `protection-changed` of the page's client (`tincanApp.protection`). */
function recordProtection(page) {
  return page.evaluate(() => {
    const app = /** @type {any} */ (globalThis).tincanApp;
    app.protection = [];
    app.client.on('protection-changed', (/** @type {any} */ d) => app.protection.push({ ...d, at: performance.now() }));
  });
}

/** @returns {Promise<any[]>} */
const protectionEvents = (page) => page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.protection);

/**
 * What the page's one mesh link sends, as the browser says: the client's
 * protection, the applied remote description (RED first? ptime?), the
 * sender's encoding, and its outbound RTP (packet rate over `windowMs`).
 */
async function sending(page, windowMs = 2_000) {
  const s = await page.evaluate(async (windowMs) => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    const [peerId, link] = [...client.peers][0];
    const sender = link.pc.getSenders().find((/** @type {RTCRtpSender} */ x) => x.track?.kind === 'audio');
    const outbound = async () => {
      let o = null;
      (await sender.getStats()).forEach((/** @type {any} */ r) => {
        if (r.type === 'outbound-rtp') o = r;
      });
      return /** @type {any} */ (o);
    };
    const a = await outbound();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const b = await outbound();
    const seconds = (performance.now() - t0) / 1000;
    return {
      protection: client.protection(peerId),
      red: link.negotiated()?.red ?? null,
      remoteSdp: link.pc.remoteDescription?.sdp ?? '',
      maxBitrate: sender.getParameters().encodings[0]?.maxBitrate ?? null,
      targetBitrate: b?.targetBitrate ?? null,
      pps: a && b ? (b.packetsSent - a.packetsSent) / seconds : 0,
      kbps: a && b ? ((b.bytesSent - a.bytesSent) * 8) / seconds / 1000 : 0,
      path: link.lastStats?.path ?? null,
      panel: document.querySelector('#participants .s-protection')?.textContent ?? '',
    };
  }, windowMs);
  return { ...s, ptimeMs: opusPtime(s.remoteSdp), remoteSdp: undefined };
}

test('a sender raises its loss protection under 15 % uplink loss and lowers it when the loss stops', { timeout: 240_000 }, async () => {
  const s = /** @type {any} */ (stack);
  const relay = await startImpairRelay(s.turn, { seed: 11 });
  const room = unique('protect-');
  const sam = await userInBrowser('Sam', { baseUrl: s.url, toneHz: 440, signInPath: '?relay=1&red=auto', initScript: turnThrough(relay.addr) });
  const lou = await userInBrowser('Lou', { baseUrl: s.url, toneHz: 660 });
  await joinRoom(sam, room);
  await joinRoom(lou, room);
  await recordProtection(sam.page);
  await expectAudioFrom(lou.page, ['Sam'], 45_000);

  // Clean: level 0, and with `red: 'auto'` plain Opus in 20 ms packets.
  const clean = await waitFor(
    async () => {
      const x = await sending(sam.page);
      return x.protection?.level === 0 && x.path === 'relayed' && x.pps > 40 && x;
    },
    { timeoutMs: 20_000, what: 'a clean relayed link at level 0', describe: async () => JSON.stringify(await sending(sam.page)) },
  );
  assert.equal(clean.red, false, 'red: auto sends plain Opus on a clean link');
  assert.equal(clean.ptimeMs, null);
  assert.equal(clean.maxBitrate, null);

  // 15 % of what Sam sends is lost: Sam's receiver reports say so, and it
  // goes to level 2 (RED, 60 ms packets, a 24 kbit/s cap).
  await relay.set('up', 'loss=0.15');
  const lossAt = Date.now();
  await waitFor(async () => (await protectionEvents(sam.page)).some((e) => e.level === 2), {
    timeoutMs: 60_000,
    intervalMs: 500,
    what: 'protection level 2 under 15 % loss',
    describe: async () => JSON.stringify({ events: await protectionEvents(sam.page), now: await sending(sam.page) }),
  });
  report('time to level 2 after 15 % uplink loss began', (Date.now() - lossAt) / 1000, 's');
  const robust = await waitFor(
    async () => {
      const x = await sending(sam.page);
      return x.red === true && x.ptimeMs === 60 && x.maxBitrate === 24_000 && x.pps < 25 && x;
    },
    { timeoutMs: 30_000, what: 'RED, 60 ms packets and the cap in force', describe: async () => JSON.stringify(await sending(sam.page)) },
  );
  assert.ok(robust.targetBitrate !== null && robust.targetBitrate <= 24_000, `targetBitrate follows the cap: ${robust.targetBitrate}`);
  assert.match(robust.panel, /level 2, robust \(RED on, 60 ms packets, ≤ 24 kbit\/s\)/);
  assert.ok((robust.protection?.sendLossPct ?? 0) > 5, `smoothed send loss near 15 %: ${robust.protection?.sendLossPct}`);
  report('packets per second at level 2', robust.pps, '/s');
  report('sending at level 2', robust.kbps, 'kbit/s');
  await expectAudioFrom(lou.page, ['Sam']);
  // The other direction is clean: Lou protects nothing, and sees the loss it receives.
  const atLou = await lou.page.evaluate(() => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    return client.protection([...client.peers.keys()][0]);
  });
  assert.equal(atLou?.level, 0, `Lou's sending is clean: ${JSON.stringify(atLou)}`);
  assert.ok((atLou?.recvLossPct ?? 0) > 3, `Lou receives Sam's loss: ${JSON.stringify(atLou)}`);

  // The loss stops: back to level 0 within a bounded wait, one step at a time.
  await relay.set('up', '');
  const cleanAt = Date.now();
  await waitFor(
    async () => {
      const events = await protectionEvents(sam.page);
      return events.length > 0 && events[events.length - 1].level === 0;
    },
    {
      timeoutMs: 90_000,
      intervalMs: 500,
      what: 'protection back to level 0 after the loss stopped',
      describe: async () => JSON.stringify({ events: await protectionEvents(sam.page), now: await sending(sam.page) }),
    },
  );
  report('time back to level 0 after the loss stopped', (Date.now() - cleanAt) / 1000, 's');
  const after = await waitFor(
    async () => {
      const x = await sending(sam.page);
      return x.red === false && x.ptimeMs === null && x.maxBitrate === null && x.pps > 40 && x;
    },
    { timeoutMs: 30_000, what: 'plain Opus, 20 ms packets, no cap again', describe: async () => JSON.stringify(await sending(sam.page)) },
  );
  assert.match(after.panel, /level 0, clean \(RED off\)/);
  await expectAudioFrom(lou.page, ['Sam']);

  // No flapping: up once (to 1 or straight to 2), then down a step at a time.
  const levels = (await protectionEvents(sam.page)).map((e) => e.level);
  const peak = levels.indexOf(2);
  assert.ok(peak >= 0 && peak <= 1, `raised at most twice before level 2: ${levels}`);
  assert.deepEqual(levels.slice(peak), [2, 1, 0], `down one step at a time: ${levels}`);
  await relay.stop();
});
