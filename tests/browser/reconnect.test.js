// The signaling WebSocket is closed from the server side (API Gateway's
// Management API, DELETE /@connections/{id}): the page reconnects, refreshes
// its expired access token, rejoins, and the call re-establishes.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  userInBrowser,
  joinRoom,
  expectAudioFrom,
  participantNames,
  waitFor,
  unique,
  expiredAccessToken,
  report,
  screenshot,
  closeAll,
  MANAGEMENT_URL,
} from './helpers.js';

afterEach(closeAll);

test('server closes the WebSocket: the page reconnects, rejoins, audio goes on', { timeout: 150_000 }, async () => {
  const room = unique('drop-');
  const hal = await userInBrowser('Hal');
  const ida = await userInBrowser('Ida');
  try {
    await joinRoom(hal, room);
    await joinRoom(ida, room);
    await expectAudioFrom(hal.page, ['Ida']);
    await expectAudioFrom(ida.page, ['Hal']);

    // Record what the page shows while it reconnects, and make its access
    // token one the server refuses as expired (while the client still
    // believes it valid): the reconnect must refresh it to get back in.
    const refused = expiredAccessToken({ id: 'whoever', displayName: 'Hal' });
    const oldPeerId = await hal.page.evaluate((token) => {
      const app = /** @type {any} */ (globalThis).tincanApp;
      app.seen = [];
      app.client.addEventListener('reconnecting', () => app.seen.push(document.getElementById('banner').textContent));
      app.client.addEventListener('reconnected', () => app.seen.push('reconnected'));
      app.client.session.current.accessToken = token;
      return app.client.self.peerId;
    }, refused);

    const closedAt = Date.now();
    const res = await fetch(`${MANAGEMENT_URL}/@connections/${encodeURIComponent(oldPeerId)}`, {
      method: 'DELETE',
      signal: AbortSignal.timeout(5000),
    });
    assert.ok(res.status === 204 || res.status === 200, `DELETE @connections answered ${res.status}`);

    await hal.page.locator('#banner').filter({ hasText: /reconnecting/i }).waitFor({ state: 'visible', timeout: 5000 })
      .catch(() => {}); // may already be gone: the record below is authoritative
    const newPeerId = await waitFor(
      () =>
        hal.page.evaluate((old) => {
          const c = /** @type {any} */ (globalThis).tincanApp.client;
          return c.state === 'joined' && c.self && c.self.peerId !== old ? c.self.peerId : null;
        }, oldPeerId),
      { timeoutMs: 20_000, what: 'rejoin with a new connection id' },
    );
    report('server-side close -> rejoined', Date.now() - closedAt, 'ms');
    const seen = await hal.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.seen);
    assert.match(seen[0], /Connection lost — reconnecting/);
    assert.ok(seen.includes('reconnected'));
    assert.notEqual(newPeerId, oldPeerId);
    assert.ok(await hal.page.locator('#banner').isHidden(), 'the banner clears after the rejoin');

    // The token was refreshed: the stored one is no longer the refused one.
    const refreshed = await hal.page.evaluate(
      () => /** @type {any} */ (globalThis).tincanApp.client.session.current.accessToken,
    );
    assert.ok(refreshed && refreshed !== refused, 'the refused token was replaced by a refreshed one');

    // Both sides: the same two people, and audio both ways on new connections.
    await waitFor(async () => (await participantNames(ida.page)).length === 2, { what: 'Ida sees two people' });
    await expectAudioFrom(hal.page, ['Ida']);
    await expectAudioFrom(ida.page, ['Hal']);
    report('server-side close -> audio flowing again', Date.now() - closedAt, 'ms');
    await screenshot(hal.page, 'call-after-reconnect.png');
  } finally {
    await Promise.all([hal.close(), ida.close()]);
  }
});

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
