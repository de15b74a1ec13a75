// Audio preferences are saved to /me/preferences, come back after a reload,
// and are applied to getUserMedia; the call history lists the call.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { userInBrowser, joinRoom, unique, closeAll, waitFor } from './helpers.js';

afterEach(closeAll);

test('preferences persist and shape the microphone; history shows the call', { timeout: 60_000 }, async () => {
  const rae = await userInBrowser('Rae');
  const { page } = rae;
  const room = unique('prefs-');
  try {
    // The settings are on the pre-join view.
    await page.locator('#room-input').fill(room);
    await page.locator('#join-button').click();
    await page.locator('#prejoin-view').waitFor({ state: 'visible' });
    assert.ok(await page.locator('#pref-echoCancellation').isChecked(), 'echo cancellation defaults to on');
    await page.getByLabel('Echo cancellation').uncheck();
    await page.locator('#prefs-status').filter({ hasText: 'Saved.' }).waitFor();
    await page.getByLabel('Join calls muted').check();
    await page.locator('#prefs-status').filter({ hasText: 'Saved.' }).waitFor();

    // A reload comes back to the same room's pre-join view.
    await page.reload();
    await page.locator('#prejoin-view').waitFor({ state: 'visible' });
    await waitFor(async () => !(await page.locator('#pref-echoCancellation').isChecked()), {
      what: 'echo cancellation off after reload',
    });
    assert.ok(await page.locator('#pref-startMuted').isChecked());
    assert.ok(await page.locator('#pref-noiseSuppression').isChecked());

    await joinRoom(rae, room);
    const settings = await page.evaluate(() =>
      /** @type {any} */ (globalThis).tincanApp.mic.getAudioTracks()[0].getSettings(),
    );
    assert.equal(settings.echoCancellation, false, 'getUserMedia got echoCancellation: false');
    assert.equal(await page.locator('#mute-button').getAttribute('aria-pressed'), 'true', 'joined muted');

    await page.locator('#leave-button').click();
    await page.locator('#history li').filter({ hasText: room }).waitFor();
  } finally {
    await rae.close();
  }
});
