// Devices mid-call, with Chromium's fake devices (two extra inputs, two
// extra outputs): switching the speaker and the microphone keeps the call
// and its audio, and a microphone track that ends is reported and replaced
// without leaving. Run through run.sh.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { userInBrowser, joinRoom, expectAudioFrom, linkIds, waitFor, unique, report, closeAll } from './helpers.js';

afterEach(closeAll);

test('switching speaker and microphone mid-call, and a microphone that ends, keep the call and the audio', { timeout: 120_000 }, async () => {
  const room = unique('devices-');
  const ada = await userInBrowser('Ada');
  const bob = await userInBrowser('Bob');
  await joinRoom(ada, room);
  await joinRoom(bob, room);
  await expectAudioFrom(ada.page, ['Bob']);
  await expectAudioFrom(bob.page, ['Ada']);
  const links = { ada: await linkIds(ada.page), bob: await linkIds(bob.page) };
  await ada.page.evaluate(() => {
    const app = /** @type {any} */ (globalThis).tincanApp;
    app.deviceEvents = [];
    for (const type of ['microphone-ended', 'microphone-changed', 'output-device']) {
      app.client.addEventListener(type, (/** @type {CustomEvent} */ e) =>
        app.deviceEvents.push({ type, reason: e.detail.reason, label: e.detail.label, deviceId: e.detail.deviceId }));
    }
  });
  const events = () => ada.page.evaluate(() => /** @type {any[]} */ (/** @type {any} */ (globalThis).tincanApp.deviceEvents));

  // Speaker: the second fake output, on the element playing Bob.
  const speaker = ada.page.locator('#speaker-select');
  await waitFor(async () => (await speaker.locator('option').count()) >= 3, { what: 'speakers listed' });
  const outputId = await speaker.locator('option', { hasText: 'Fake Audio Output 2' }).getAttribute('value');
  assert.ok(outputId);
  await speaker.selectOption(outputId);
  await waitFor(
    async () =>
      ada.page.evaluate(
        (id) => [...document.querySelectorAll('#audio-sink audio')].every((a) => /** @type {HTMLAudioElement} */ (a).sinkId === id),
        outputId,
      ),
    { what: 'sinkId on the audio elements' },
  );
  const playing = await ada.page.evaluate(async () => {
    const audio = /** @type {HTMLAudioElement} */ (document.querySelector('#audio-sink audio'));
    const t0 = audio.currentTime;
    await new Promise((r) => setTimeout(r, 1000));
    return !audio.paused && audio.currentTime > t0;
  });
  assert.ok(playing, 'Bob still plays after the output changed');
  await expectAudioFrom(ada.page, ['Bob']);

  // Microphone: the second fake input, picked in the settings.
  const mic = ada.page.locator('#mic-select');
  await waitFor(async () => (await mic.locator('option').count()) >= 3, { what: 'microphones listed' });
  const inputId = await mic.locator('option', { hasText: 'Fake Audio Input 2' }).getAttribute('value');
  assert.ok(inputId);
  await mic.selectOption(inputId);
  await waitFor(
    async () => ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.localStream.getAudioTracks()[0].label === 'Fake Audio Input 2'),
    { what: 'the new microphone in use' },
  );
  await expectAudioFrom(bob.page, ['Ada']);

  // The microphone ends under the call: reported, replaced, still heard.
  const endedAt = Date.now();
  await ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.localStream.getAudioTracks()[0].stop());
  await waitFor(async () => (await events()).some((e) => e.type === 'microphone-changed' && e.reason === 'recovered'), {
    timeoutMs: 10_000,
    what: 'a recovered microphone',
    describe: async () => JSON.stringify(await events()),
  });
  report('microphone ended -> replacement sent', Date.now() - endedAt, 'ms');
  const types = (await events()).map((e) => e.type);
  assert.ok(types.indexOf('microphone-ended') < types.lastIndexOf('microphone-changed'), types.join(','));
  assert.equal(
    await ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.localStream.getAudioTracks()[0].readyState),
    'live',
  );
  await expectAudioFrom(bob.page, ['Ada']);
  assert.match((await ada.page.locator('#call-status').textContent()) ?? '', /Microphone lost; switched to/);

  // Same connections all along: nothing was renegotiated from scratch.
  assert.deepEqual(await linkIds(ada.page), links.ada);
  assert.deepEqual(await linkIds(bob.page), links.bob);
  assert.equal(await ada.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.state), 'joined');
});
