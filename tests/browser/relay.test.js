// The relayed path: with `?relay=1` the page only uses TURN candidates, so
// audio must go through the local stack's embedded TURN server, and the
// connection panel must say "relayed".

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { userInBrowser, joinRoom, expectAudioFrom, unique, closeAll, waitFor, report } from './helpers.js';

afterEach(closeAll);

/** Whether this page can allocate a relay candidate with the iceServers the server hands out. */
async function canAllocateRelay(page) {
  return page.evaluate(async () => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    const pc = new RTCPeerConnection({ iceServers: client.iceServers, iceTransportPolicy: 'relay' });
    pc.addTransceiver('audio');
    const found = new Promise((resolve) => {
      pc.onicecandidate = (e) => {
        if (e.candidate?.type === 'relay') resolve(true);
        if (!e.candidate) resolve(false);
      };
      setTimeout(() => resolve(false), 5000);
    });
    await pc.setLocalDescription();
    const ok = await found;
    pc.close();
    return ok;
  });
}

test('audio through the TURN relay shows as relayed', { timeout: 120_000 }, async () => {
  const room = unique('relay-');
  const wes = await userInBrowser('Wes');
  const xia = await userInBrowser('Xia');
  try {
    for (const p of [wes, xia]) {
      await p.page.goto(`${p.baseUrl}/?relay=1`);
      await p.page.locator('#lobby-view').waitFor({ state: 'visible' });
    }
    await joinRoom(wes, room);
    assert.ok(
      await canAllocateRelay(wes.page),
      'a TURN relay candidate from the iceServers in `joined` (is the embedded TURN server running?)',
    );
    await joinRoom(xia, room);
    await expectAudioFrom(wes.page, ['Xia'], 30_000);
    await expectAudioFrom(xia.page, ['Wes'], 30_000);
    await xia.page.locator('#participants .participant:not(.self) details summary').click();
    await waitFor(async () => /relayed/.test((await xia.page.locator('.s-path').first().textContent()) ?? ''), {
      what: '"relayed" in the connection panel',
    });
    // The page told the server, and the call history says so.
    await waitFor(
      () =>
        xia.page.evaluate(async (roomName) => {
          const client = /** @type {any} */ (globalThis).tincanApp.client;
          const token = await client.session.accessToken();
          const reply = await fetch('/me/calls', { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json());
          return reply.calls.some((c) => c.room === roomName && c.mediaPath === 'relayed');
        }, room),
      { what: 'mediaPath "relayed" in /me/calls' },
    );
    const ms = await xia.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.firstPacketMs);
    report('join click -> first inbound audio packet, relayed (joiner)', ms, 'ms');
    assert.ok(ms > 0);

    // A long call outlives its TURN credentials: an ICE restart then fetches
    // new ones from /turn-credentials and the relayed call carries on.
    const before = await xia.page.evaluate(() => {
      const client = /** @type {any} */ (globalThis).tincanApp.client;
      const old = JSON.stringify(client.iceServers);
      client.iceServers = client.iceServers.map((s) =>
        s.username ? { ...s, username: s.username.replace(/^\d+:/, '1000:') } : s,
      );
      for (const link of client.peers.values()) link.restartIce();
      return old;
    });
    await waitFor(
      () =>
        xia.page.evaluate(() => {
          const turn = /** @type {any} */ (globalThis).tincanApp.client.iceServers.find((s) => s.username);
          return Number.parseInt(turn?.username ?? '0', 10) * 1000 > Date.now();
        }),
      { what: 'renewed TURN credentials' },
    );
    assert.notEqual(await xia.page.evaluate(() => JSON.stringify(/** @type {any} */ (globalThis).tincanApp.client.iceServers)), before);
    await expectAudioFrom(wes.page, ['Xia'], 30_000);
    await expectAudioFrom(xia.page, ['Wes'], 30_000);
  } finally {
    await Promise.all([wes.close(), xia.close()]);
  }
});
