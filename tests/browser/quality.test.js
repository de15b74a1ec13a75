// Connection quality per peer and the active speaker, in a real call:
// blocking a peer's media (its sender's encoding deactivated: nothing sent)
// takes its quality to `lost` at the other end, and restoring it brings it
// back; muting moves the active speaker. Run through run.sh. Each page speaks a steady tone (the
// fake microphone's beeps leave gaps of silence that made "Bob speaking" a
// matter of luck under load).

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { userInBrowser, joinRoom, expectAudioFrom, waitFor, unique, report, closeAll } from './helpers.js';
import { classifyQuality } from '../../web/tincan/monitor.js';

afterEach(closeAll);

test('quality thresholds: excellent, good, poor, lost', () => {
  const ok = { lossPct: 0, rttMs: 20, jitterMs: 2, connected: true, msSinceLastPacket: 20 };
  assert.equal(classifyQuality(ok), 'excellent');
  assert.equal(classifyQuality({ ...ok, lossPct: 2 }), 'good');
  assert.equal(classifyQuality({ ...ok, rttMs: 200 }), 'good');
  assert.equal(classifyQuality({ ...ok, jitterMs: 30 }), 'good');
  assert.equal(classifyQuality({ ...ok, lossPct: 8 }), 'poor');
  assert.equal(classifyQuality({ ...ok, rttMs: 450 }), 'poor');
  assert.equal(classifyQuality({ ...ok, jitterMs: 60 }), 'poor');
  assert.equal(classifyQuality({ ...ok, msSinceLastPacket: 3000 }), 'lost');
  assert.equal(classifyQuality({ ...ok, connected: false }), 'lost');
});

/** Starts recording the client's quality and speaker events in the page. */
function record(page) {
  return page.evaluate(() => {
    const app = /** @type {any} */ (globalThis).tincanApp;
    app.qualityEvents = [];
    app.speakerEvents = [];
    app.client.addEventListener('connection-quality', (/** @type {CustomEvent} */ e) => app.qualityEvents.push(e.detail));
    app.client.addEventListener('active-speaker', (/** @type {CustomEvent} */ e) => app.speakerEvents.push(e.detail));
  });
}

/**
 * Stops (false) or restarts the page's outgoing audio on every connection.
 * Deactivating the sender's encoding sends nothing at all; a null track
 * would not do: Chromium keeps sending silence for a sender without one.
 */
function sendAudio(page, on) {
  return page.evaluate(async (on) => {
    const client = /** @type {any} */ (globalThis).tincanApp.client;
    for (const link of client.peers.values()) {
      for (const sender of link.pc.getSenders()) {
        const params = sender.getParameters();
        for (const encoding of params.encodings) encoding.active = on;
        await sender.setParameters(params);
      }
    }
  }, on);
}

test('connection-quality drops to lost when media is blocked and recovers; active-speaker follows mutes', { timeout: 120_000 }, async () => {
  const room = unique('quality-');
  const ada = await userInBrowser('Ada', { toneHz: 440 });
  const bob = await userInBrowser('Bob', { toneHz: 660 });
  await joinRoom(ada, room);
  await record(ada.page);
  await joinRoom(bob, room);
  await expectAudioFrom(ada.page, ['Bob']);
  const bobId = await bob.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId);
  const adaId = await ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId);
  const qualityAtAda = () => ada.page.evaluate((id) => /** @type {any} */ (globalThis).tincanApp.client.connectionQuality(id), bobId);
  const events = () => ada.page.evaluate(() => JSON.stringify(/** @type {any} */ (globalThis).tincanApp.qualityEvents));

  await waitFor(async () => ['excellent', 'good'].includes(await qualityAtAda()), { what: 'a good first verdict', describe: events });

  const blockedAt = Date.now();
  await sendAudio(bob.page, false);
  await waitFor(async () => (await qualityAtAda()) === 'lost', { timeoutMs: 10_000, what: 'lost', describe: events });
  report('media blocked -> connection-quality lost', Date.now() - blockedAt, 'ms');
  assert.equal(await ada.page.locator(`.participant[data-peer-id="${bobId}"] .quality`).textContent(), 'no audio');

  const restoredAt = Date.now();
  await sendAudio(bob.page, true);
  await waitFor(async () => ['excellent', 'good'].includes(await qualityAtAda()), { timeoutMs: 10_000, what: 'recovery', describe: events });
  report('media restored -> connection-quality back', Date.now() - restoredAt, 'ms');
  const seen = JSON.parse(await events()).filter((/** @type {any} */ e) => e.peerId === bobId).map((/** @type {any} */ e) => e.quality);
  assert.ok(seen.indexOf('lost') > 0 && seen.lastIndexOf('lost') < seen.length - 1, `lost, between good verdicts: ${seen}`);

  // Active speaker at Ada: Bob once Ada is muted; nobody once both are; Ada once she unmutes.
  const speakerAtAda = () => ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.activeSpeaker);
  const speakers = () => ada.page.evaluate(() => JSON.stringify(/** @type {any} */ (globalThis).tincanApp.speakerEvents));
  await ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.setMuted(true));
  await waitFor(async () => (await speakerAtAda()) === bobId, { timeoutMs: 10_000, what: 'Bob speaking', describe: speakers });
  await bob.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.setMuted(true));
  await waitFor(async () => (await speakerAtAda()) === null, { timeoutMs: 10_000, what: 'silence', describe: speakers });
  await ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.setMuted(false));
  await waitFor(async () => (await speakerAtAda()) === adaId, { timeoutMs: 10_000, what: 'Ada speaking', describe: speakers });
  const last = JSON.parse(await speakers()).at(-1);
  assert.equal(last.self, true);
});
