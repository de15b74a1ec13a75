// Calls through a gateway that reorders frames as API Gateway can: each
// frame's Lambda invocation is delayed by a random 0-150 ms
// (TINCAN_INVOKE_JITTER_MS), so offers, answers, candidates, `peer-joined`
// and `joined` arrive in any order. Five fresh calls in a row must all reach
// two-way audio, half of them with both people joining at the same moment.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { userInBrowser, joinRoom, expectAudioFrom, unique, report, startStack, closeAll } from './helpers.js';

afterEach(closeAll);

test('five fresh calls in a row reach two-way audio with 0-150 ms invocation jitter', { timeout: 300_000 }, async () => {
  const stack = await startStack('jitter', { TINCAN_INVOKE_JITTER_MS: '150' });
  try {
    const nia = await userInBrowser('Nia', { baseUrl: stack.url });
    const oto = await userInBrowser('Oto', { baseUrl: stack.url });
    for (let call = 1; call <= 5; call += 1) {
      const room = unique(`jitter${call}-`);
      const started = Date.now();
      if (call % 2 === 0) {
        await Promise.all([joinRoom(nia, room), joinRoom(oto, room)]);
      } else {
        await joinRoom(nia, room);
        await joinRoom(oto, room);
      }
      await Promise.all([expectAudioFrom(nia.page, ['Oto']), expectAudioFrom(oto.page, ['Nia'])]);
      report(`call ${call} (${call % 2 === 0 ? 'joined together' : 'one after the other'}): join -> two-way audio`, Date.now() - started, 'ms');
      for (const page of [nia.page, oto.page]) {
        const peers = await page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.peers.size);
        assert.equal(peers, 1, `call ${call}: one peer connection`);
      }
      for (const who of [nia, oto]) {
        await who.page.locator('#leave-button').click();
        await who.page.locator('#lobby-view').waitFor({ state: 'visible' });
      }
    }
  } finally {
    await closeAll();
    await stack.stop();
  }
});
