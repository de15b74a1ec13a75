// A real audio call between real browsers: two-way audio, a three-way mesh
// with someone leaving, and mute. Run through run.sh.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  userInBrowser,
  joinRoom,
  expectAudioFrom,
  inboundAudio,
  participantNames,
  screenshot,
  waitFor,
  unique,
  report,
  WEB_SCREENSHOTS,
  closeAll,
} from './helpers.js';

afterEach(closeAll);

test('two users hear each other, both ways', { timeout: 120_000 }, async () => {
  const room = unique('duo-');
  const ada = await userInBrowser('Ada');
  const bob = await userInBrowser('Bob');
  try {
    await joinRoom(ada, room);
    await joinRoom(bob, room);
    // Both sides: inbound packets rising and non-zero audio energy.
    const atAda = await expectAudioFrom(ada.page, ['Bob']);
    const atBob = await expectAudioFrom(bob.page, ['Ada']);
    assert.ok(atAda.get('Bob').totalAudioEnergy > 0);
    assert.ok(atBob.get('Ada').totalAudioEnergy > 0);

    for (const p of [ada.page, bob.page]) {
      assert.deepEqual((await participantNames(p)).length, 2);
    }
    // The joiner's time from clicking Join to the first audio packet.
    const firstPacketMs = await bob.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.firstPacketMs);
    assert.ok(typeof firstPacketMs === 'number' && firstPacketMs > 0, 'first packet time measured');
    report('join click -> first inbound audio packet (joiner)', firstPacketMs, 'ms');

    // Let stats accumulate, then report the path's added latency as getStats() sees it.
    await new Promise((r) => setTimeout(r, 3000));
    const rows = [...(await inboundAudio(ada.page)), ...(await inboundAudio(bob.page))];
    for (const row of rows) {
      assert.equal(row.connectionState, 'connected');
      const jb = row.jitterBufferEmittedCount > 0 ? (1000 * row.jitterBufferDelay) / row.jitterBufferEmittedCount : NaN;
      report(`jitter buffer delay (audio from ${row.name})`, jb, 'ms');
      report(`ICE RTT (audio from ${row.name})`, row.rttMs ?? NaN, 'ms');
    }

    // The page's own connection panel shows the path and the meters move.
    await bob.page.locator('#participants .participant:not(.self) details summary').click();
    await waitFor(async () => /direct|relayed/.test(await bob.page.locator('.s-path').first().textContent()), {
      what: 'path in the connection panel',
    });
    await waitFor(
      async () => Number(await bob.page.locator('.participant:not(.self) .meter').getAttribute('aria-valuenow')) > 0,
      { what: 'a moving level meter', intervalMs: 50, timeoutMs: 10_000 },
    );
    await new Promise((r) => setTimeout(r, 5000)); // a few chart points
    const shot = await screenshot(bob.page, 'call-two-participants.png');
    // The README's picture: refreshed on request, so a test run leaves the tree clean.
    const readmeShot = path.join(WEB_SCREENSHOTS, 'call.png');
    if (process.env.UPDATE_SCREENSHOTS === '1' || !fs.existsSync(readmeShot)) {
      fs.mkdirSync(WEB_SCREENSHOTS, { recursive: true });
      fs.copyFileSync(shot, readmeShot);
    }
    await bob.page.setViewportSize({ width: 390, height: 844 });
    await screenshot(bob.page, 'call-phone-width.png');
  } finally {
    await Promise.all([ada.close(), bob.close()]);
  }
});

test('three-way mesh, then one leaves', { timeout: 150_000 }, async () => {
  const room = unique('trio-');
  const people = [await userInBrowser('Cleo'), await userInBrowser('Dan'), await userInBrowser('Eve')];
  const [cleo, dan, eve] = people;
  try {
    for (const p of people) await joinRoom(p, room);
    await expectAudioFrom(cleo.page, ['Dan', 'Eve']);
    await expectAudioFrom(dan.page, ['Cleo', 'Eve']);
    await expectAudioFrom(eve.page, ['Cleo', 'Dan']);
    await screenshot(eve.page, 'call-three-participants.png');

    await eve.page.locator('#leave-button').click();
    await eve.page.locator('#lobby-view').waitFor({ state: 'visible' });
    for (const p of [cleo, dan]) {
      await waitFor(async () => (await participantNames(p.page)).length === 2, { what: 'Eve gone from the list' });
      assert.ok(!(await participantNames(p.page)).some((n) => n.startsWith('Eve')));
      const peers = await p.page.evaluate(() =>
        [.../** @type {any} */ (globalThis).tincanApp.client.peers.values()].map((l) => l.peer.displayName),
      );
      assert.equal(peers.length, 1, 'the connection to Eve is closed');
    }
    // The two who stayed still hear each other.
    await expectAudioFrom(cleo.page, ['Dan']);
    await expectAudioFrom(dan.page, ['Cleo']);
  } finally {
    await Promise.all(people.map((p) => p.close()));
  }
});

test('mute stops the energy at the receiver and shows on the other page', { timeout: 120_000 }, async () => {
  const room = unique('mute-');
  const fay = await userInBrowser('Fay');
  const gus = await userInBrowser('Gus');
  try {
    await joinRoom(fay, room);
    await joinRoom(gus, room);
    await expectAudioFrom(gus.page, ['Fay']);

    const energy = async () => (await inboundAudio(gus.page)).find((r) => r.name === 'Fay');
    const before1 = await energy();
    await new Promise((r) => setTimeout(r, 2000));
    const before2 = await energy();
    const speakingEnergy = before2.totalAudioEnergy - before1.totalAudioEnergy;
    assert.ok(speakingEnergy > 0, 'energy grows while unmuted');

    await fay.page.locator('#mute-button').click();
    assert.equal(await fay.page.locator('#mute-button').getAttribute('aria-pressed'), 'true');
    await gus.page.locator('.participant:not(.self) .muted-badge').waitFor({ state: 'visible' });
    await new Promise((r) => setTimeout(r, 1000)); // let in-flight audio drain
    const muted1 = await energy();
    await new Promise((r) => setTimeout(r, 2000));
    const muted2 = await energy();
    const mutedEnergy = muted2.totalAudioEnergy - muted1.totalAudioEnergy;
    report('audio energy over 2 s, unmuted', speakingEnergy, '');
    report('audio energy over 2 s, muted', mutedEnergy, '');
    assert.ok(mutedEnergy < speakingEnergy * 0.01, `muted energy ${mutedEnergy} vs ${speakingEnergy}`);

    await fay.page.locator('#mute-button').click();
    await gus.page.locator('.participant:not(.self) .muted-badge').waitFor({ state: 'hidden' });
    const after1 = await energy();
    await waitFor(async () => (await energy()).totalAudioEnergy > after1.totalAudioEnergy, {
      what: 'energy after unmute',
    });
  } finally {
    await Promise.all([fay.close(), gus.close()]);
  }
});

test('ICE restart from both sides at once (glare) keeps the call', { timeout: 120_000 }, async () => {
  const room = unique('glare-');
  const uma = await userInBrowser('Uma');
  const vic = await userInBrowser('Vic');
  try {
    await joinRoom(uma, room);
    await joinRoom(vic, room);
    await expectAudioFrom(uma.page, ['Vic']);
    await expectAudioFrom(vic.page, ['Uma']);
    const ufrag = (page) =>
      page.evaluate(() => {
        const link = [.../** @type {any} */ (globalThis).tincanApp.client.peers.values()][0];
        return /a=ice-ufrag:(\S+)/.exec(link.pc.localDescription?.sdp ?? '')?.[1] ?? null;
      });
    const before = [await ufrag(uma.page), await ufrag(vic.page)];
    // What a failed ICE transport triggers, on both sides in the same instant.
    const restart = (page) =>
      page.evaluate(() => {
        for (const link of /** @type {any} */ (globalThis).tincanApp.client.peers.values()) link.restartIce();
      });
    await Promise.all([restart(uma.page), restart(vic.page)]);
    await waitFor(async () => (await ufrag(uma.page)) !== before[0] && (await ufrag(vic.page)) !== before[1], {
      what: 'new ICE credentials on both sides',
      timeoutMs: 15_000,
    });
    await expectAudioFrom(uma.page, ['Vic']);
    await expectAudioFrom(vic.page, ['Uma']);
    const states = await Promise.all(
      [uma.page, vic.page].map((p) =>
        p.evaluate(() => [.../** @type {any} */ (globalThis).tincanApp.client.peers.values()].map((l) => l.pc.signalingState)),
      ),
    );
    assert.deepEqual(states, [['stable'], ['stable']]);
  } finally {
    await Promise.all([uma.close(), vic.close()]);
  }
});
