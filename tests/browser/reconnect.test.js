// Keepalive of the signaling WebSocket. Socket cuts, resume and rejoin are in
// resume.test.js.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { userInBrowser, closeAll } from './helpers.js';

afterEach(closeAll);

test('keepalive: the client pings and gets pongs', { timeout: 60_000 }, async () => {
  const jo = await userInBrowser('Jo');
  try {
    // The library's own API, with a short ping interval.
    const pongs = await jo.page.evaluate(async () => {
      const { TincanClient } = await import('/tincan-client.js');
      const client = new TincanClient({ pingIntervalMs: 300 });
      let count = 0;
      client.channel.addEventListener('message', (e) => {
        if (/** @type {CustomEvent} */ (e).detail.type === 'pong') count += 1;
      });
      await client.join('keepalive-' + Math.random().toString(16).slice(2), { stream: null });
      await new Promise((r) => setTimeout(r, 1500));
      client.leave();
      return count;
    });
    assert.ok(pongs >= 2, `got ${pongs} pongs`);
  } finally {
    await jo.close();
  }
});
