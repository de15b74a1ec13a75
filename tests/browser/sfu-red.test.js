// RED (RFC 2198) through the SFU of the embedded media node (docs/sfu.md,
// "Codecs"): on a stack of its own with TINCAN_MESH_MAX=2, three pages in
// one room are on the SFU. Two offer RED first (the client's default), the
// third turns it off (`?red=0`, so it does not offer RED at all): the node
// negotiates RED with the first two and sends them RED it builds (the
// current frame after the previous one on a clean link), from RED and
// plain Opus publishers alike, and plain Opus to the third. And
// the node negotiates transport-wide congestion control on the microphone.

import { test, after, before, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { closeAll, joinRoom, report, sfuState, startStack, unique, userInBrowser, waitFor } from './helpers.js';

/** @type {{url: string, stop: () => Promise<void>} | null} */
let stack = null;

before(async () => {
  stack = await startStack('sfu-red', { TINCAN_MESH_MAX: '2' });
});
after(async () => {
  await stack?.stop();
});
afterEach(closeAll);

/** A signed-in page of the stack whose microphone is a tone, signed in at `query`. */
const toneUser = (name, hz, query = '') =>
  userInBrowser(name, { baseUrl: /** @type {any} */ (stack).url, toneHz: hz, signInPath: query });

/**
 * What a page's SFU link negotiated and receives: per audio m-line of the
 * node's answer, its first payload type and RED's; per slot receiving, the
 * peer in it, the received codec, energy and payload bytes per packet
 * (getStats; Chromium names the Opus inside RED as the codec, so RED shows
 * in the size: each packet carries the previous frame too).
 * @param {import('playwright-core').Page} page
 */
function redState(page) {
  return page.evaluate(async () => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    const link = client.sfu;
    const answer = link?.pc.remoteDescription?.sdp ?? '';
    const sections = answer.split(/\r?\nm=/).slice(1).filter((s) => s.startsWith('audio '));
    const mlines = sections.map((s) => {
      const pts = s.split(/\r?\n/)[0].split(' ').slice(3);
      const red = /^a=rtpmap:(\d+) red\/48000/m.exec(s)?.[1] ?? null;
      return { first: pts[0], red };
    });
    const stats = await link.pc.getStats();
    /** @type {Record<string, string>} */
    const codecs = {};
    const inbound = [];
    stats.forEach((/** @type {any} */ s) => {
      if (s.type === 'codec') codecs[s.id] = s.mimeType;
    });
    /** @type {Map<string, string | null>} slot mid -> the peer the node says is in it */
    const peerByMid = new Map(link.slotTransceivers.map((/** @type {any} */ t, /** @type {number} */ i) => [t.mid, link.speakers[i]?.peerId ?? null]));
    stats.forEach((/** @type {any} */ s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.packetsReceived > 0) {
        inbound.push({
          mid: s.mid,
          peerId: peerByMid.get(s.mid) ?? null,
          codec: codecs[s.codecId] ?? null,
          energy: s.totalAudioEnergy ?? 0,
          packets: s.packetsReceived,
          bytesPerPacket: s.bytesReceived / s.packetsReceived,
        });
      }
    });
    const redOffered = (RTCRtpReceiver.getCapabilities('audio')?.codecs ?? []).some((c) => c.mimeType === 'audio/red');
    return { mlines, inbound, negotiated: link.negotiated(), redOffered };
  });
}

test('through the SFU, RED is negotiated end to end between pages that offer it, and a page without RED hears plain Opus', { timeout: 180_000 }, async () => {
  const room = unique('red');
  const ann = await toneUser('Ann', 300);
  const ben = await toneUser('Ben', 450);
  const cid = await toneUser('Cid', 600, '?red=0');
  for (const user of [ann, ben, cid]) await joinRoom(user, room);
  const ids = await Promise.all([ann, ben, cid].map((u) => u.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId)));
  // Everyone on the SFU hears the two others.
  for (const [i, user] of [ann, ben, cid].entries()) {
    const others = ids.filter((_, j) => j !== i).sort();
    await waitFor(
      async () => {
        const s = await sfuState(user.page);
        const heard = s.slots.filter((x) => x.peerId && x.packets > 0 && x.energy > 0).map((x) => x.peerId).sort();
        return s.mode === 'sfu' && s.sfuState === 'connected' && JSON.stringify(heard) === JSON.stringify(others);
      },
      { timeoutMs: 45_000, what: `${user.name} on the SFU hearing the two others`, describe: async () => JSON.stringify(await sfuState(user.page)) },
    );
  }
  // Enough packets on every slot for sizes to settle.
  const states = await waitFor(
    async () => {
      const all = await Promise.all([ann, ben, cid].map((u) => redState(u.page)));
      return all.every((at) => at.inbound.length === 2 && at.inbound.every((s) => s.packets >= 100 && s.peerId)) && all;
    },
    { timeoutMs: 30_000, what: 'every slot past 100 packets' },
  );
  const [atAnn, atBen, atCid] = /** @type {any[]} */ (states);
  report('RED offered by this Chromium', String(atAnn.redOffered), '');
  if (!atAnn.redOffered) return;
  // Ann and Ben: RED first on every audio m-line of the node's answer, so
  // they send RED; the client reads the same.
  for (const [name, at] of [['Ann', atAnn], ['Ben', atBen]]) {
    for (const m of at.mlines) assert.ok(m.red && m.first === m.red, `${name}: ${JSON.stringify(at.mlines)}`);
    assert.equal(at.negotiated?.red, true, name);
  }
  // Cid did not offer RED: none in its answer, and it sends plain Opus.
  for (const m of atCid.mlines) assert.equal(m.red, null, JSON.stringify(atCid.mlines));
  assert.equal(atCid.negotiated?.red, false);
  // What arrives: Ben's packets at Ann are RED (about twice the size of
  // the same packets stripped to Opus at Cid); Cid sends plain Opus, and
  // reaches Ann in RED the node builds, about as big as Ben's.
  const [annId, benId, cidId] = ids;
  const size = (/** @type {any} */ at, /** @type {string} */ from) => at.inbound.find((/** @type {any} */ s) => s.peerId === from)?.bytesPerPacket ?? 0;
  const redAtAnn = size(atAnn, benId);
  const strippedAtCid = size(atCid, benId);
  const plainAtAnn = size(atAnn, cidId);
  report('bytes/packet: Ben -> Ann (RED)', redAtAnn.toFixed(1), 'B');
  report('bytes/packet: Ben -> Cid (RED stripped to Opus)', strippedAtCid.toFixed(1), 'B');
  report('bytes/packet: Cid -> Ann (Opus sent, RED built by the node)', plainAtAnn.toFixed(1), 'B');
  report('bytes/packet: Ann -> Ben (RED)', size(atBen, annId).toFixed(1), 'B');
  report('inbound codec names (Ann)', JSON.stringify(atAnn.inbound.map((/** @type {any} */ s) => s.codec)), '');
  assert.ok(redAtAnn > 1.6 * strippedAtCid, `${redAtAnn} vs ${strippedAtCid}`);
  assert.ok(size(atBen, annId) > 1.6 * size(atCid, annId), JSON.stringify([atBen.inbound, atCid.inbound]));
  assert.ok(plainAtAnn > 1.6 * strippedAtCid, `${plainAtAnn} vs ${strippedAtCid}`);
  // And everything decodes.
  for (const at of [atAnn, atBen, atCid]) {
    for (const s of at.inbound) assert.ok(s.energy > 0, JSON.stringify(at.inbound));
  }
});

test('through the SFU, transport-wide congestion control is negotiated on the microphone', { timeout: 180_000 }, async () => {
  const room = unique('twcc');
  const users = [await toneUser('Ann', 300), await toneUser('Ben', 450), await toneUser('Cid', 600)];
  for (const user of users) await joinRoom(user, room);
  const [ann] = users;
  // The node's answer negotiates transport-cc on the microphone's m-line,
  // with the transport-wide sequence number extension.
  const answer = await waitFor(
    async () => (await ann.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.sfu?.pc.remoteDescription?.sdp)) ?? false,
    { timeoutMs: 45_000, what: "Ann's SFU answer" },
  );
  const mic = String(answer).split(/\r?\nm=/)[1] ?? '';
  assert.match(mic, /^a=rtcp-fb:\d+ transport-cc/m);
  assert.match(mic, /^a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01/m);
  // The feedback itself is checked in media-node/tests/sfu.rs (Chromium's
  // stats do not count it). Chromium's send-side estimate (the selected
  // candidate pair's availableOutgoingBitrate) is reported, not asserted:
  // it moves from its 300 kbit/s start without transport-wide feedback too.
  const estimate = await waitFor(
    async () => {
      const bps = await ann.page.evaluate(async () => {
        const pc = /** @type {any} */ (globalThis).tincanApp.client.sfu?.pc;
        if (!pc || pc.connectionState !== 'connected') return 0;
        let out = 0;
        (await pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) out = s.availableOutgoingBitrate;
        });
        return out;
      });
      return bps > 0 && bps !== 300_000 && bps;
    },
    { timeoutMs: 45_000, what: "Ann's outgoing bandwidth estimate" },
  );
  report('Ann on the SFU: availableOutgoingBitrate', Math.round(Number(estimate) / 1000), 'kbit/s');
});
