// Listen-only joins (`client.join(room, {listenOnly: true})`): no
// microphone is ever requested, nothing is sent, and the room is heard, in a
// mesh and then on the SFU, on a stack of its own with TINCAN_MESH_MAX=2.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { closeAll, inboundAudio, joinRoom, sfuState, startStack, unique, userInBrowser, waitFor } from './helpers.js';

/** @type {{url: string, stop: () => Promise<void>} | null} */
let stack = null;

before(async () => {
  stack = await startStack('listen-only', { TINCAN_MESH_MAX: '2' });
});
after(async () => {
  await stack?.stop();
});
afterEach(closeAll);

/** A signed-in page of the stack whose microphone is a tone. */
const toneUser = (name, hz) => userInBrowser(name, { baseUrl: /** @type {any} */ (stack).url, toneHz: hz });

test('a listen-only client never opens a microphone and hears the room, in the mesh and on the SFU', { timeout: 240_000 }, async () => {
  const room = unique('listen');
  const ann = await toneUser('Ann', 440);
  await joinRoom(ann, room);
  const lis = await toneUser('Lis', 660);
  // Joined through the page's client, with `listenOnly`; every getUserMedia call is counted.
  await lis.page.evaluate(async (r) => {
    const app = /** @type {any} */ (globalThis).tincanApp;
    app.micRequests = 0;
    const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (c) => {
      app.micRequests += 1;
      return original(c);
    };
    await app.client.join(r, { listenOnly: true });
  }, room);
  const listen = () =>
    lis.page.evaluate(async () => {
      const app = /** @type {any} */ (globalThis).tincanApp;
      const client = app.client;
      let sent = 0;
      const pcs = [...client.peers.values()].map((l) => l.pc);
      if (client.sfu) pcs.push(client.sfu.pc);
      for (const pc of pcs) {
        (await pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type === 'outbound-rtp' && s.kind === 'audio') sent += s.packetsSent ?? 0;
        });
      }
      return {
        micRequests: app.micRequests,
        localStream: client.localStream !== null,
        muted: client.muted,
        sent,
        sfuSendTrack: client.sfu ? client.sfu.sender.track !== null : null,
        participants: [...client.participants.values()].map((/** @type {any} */ p) => p.toJSON()),
      };
    });
  // Mesh (TINCAN_MESH_MAX=2 here): Lis hears Ann over their link.
  await waitFor(
    async () => {
      const rows = await inboundAudio(lis.page);
      return rows.some((r) => r.name === 'Ann' && r.packetsReceived > 0 && r.totalAudioEnergy > 0);
    },
    { timeoutMs: 30_000, what: 'Lis hearing Ann in the mesh', describe: async () => JSON.stringify(await inboundAudio(lis.page)) },
  );
  // A third moves the room to the SFU: Lis hears both through its slots.
  const ben = await toneUser('Ben', 550);
  await joinRoom(ben, room);
  const ids = await Promise.all([ann, ben].map((u) => u.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId)));
  await waitFor(
    async () => {
      const s = await sfuState(lis.page);
      const heard = s.slots.filter((x) => x.peerId && x.packets > 0 && x.energy > 0).map((x) => x.peerId).sort();
      return s.mode === 'sfu' && s.sfuState === 'connected' && JSON.stringify(heard) === JSON.stringify([...ids].sort());
    },
    { timeoutMs: 45_000, what: 'Lis hearing Ann and Ben on the SFU', describe: async () => JSON.stringify(await sfuState(lis.page)) },
  );
  const l = await listen();
  assert.equal(l.micRequests, 0, 'no microphone was ever requested');
  assert.equal(l.localStream, false);
  assert.equal(l.muted, true, 'a listen-only participant shows as muted');
  assert.equal(l.sent, 0, 'nothing was sent');
  assert.equal(l.sfuSendTrack, false, 'the SFU send transceiver has no track');
  // The others list Lis as muted.
  const lisId = await lis.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId);
  await waitFor(
    () => ann.page.evaluate((id) => /** @type {any} */ (globalThis).tincanApp.client.participants.get(id)?.muted === true, lisId),
    { timeoutMs: 10_000, what: 'Ann seeing Lis muted' },
  );
});
