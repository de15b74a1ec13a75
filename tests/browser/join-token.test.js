// Join tokens for embedding apps (docs/embedding.md): a page that never
// signs in joins with a listen-only token minted by the Node example, is
// never asked for a microphone and hears the room; a forged, an expired and
// a wrong-room token are refused with stable codes. A stack of its own with
// an API key.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { closeAll, inboundAudio, joinRoom, launch, startStack, unique, userInBrowser, waitFor } from './helpers.js';
import { mintJoinToken } from '../../examples/join-token/mint-join-token.mjs';

const KEY_ID = 'testapp';
const SECRET = crypto.randomBytes(32).toString('hex');

/** @type {{url: string, stop: () => Promise<void>} | null} */
let stack = null;

before(async () => {
  stack = await startStack('join-token', { TINCAN_API_KEYS: `${KEY_ID}:${SECRET}` });
});
after(async () => {
  await stack?.stop();
});
afterEach(closeAll);

/** @param {{room: string, speak: boolean, secret?: string, now?: number}} o */
const token = (o) =>
  mintJoinToken({ keyId: KEY_ID, secret: o.secret ?? SECRET, room: o.room, sub: unique('u'), name: 'Lis', speak: o.speak, now: o.now });

/**
 * A page of the app that never signs in, with every getUserMedia call
 * counted; joins `room` through the page's client with `joinToken`.
 * Resolves to the join's outcome: `{self}` or `{code}`.
 */
async function joinWithToken(page, room, joinToken) {
  return page.evaluate(
    async ([r, t]) => {
      const app = /** @type {any} */ (globalThis).tincanApp;
      if (app.micRequests === undefined) {
        app.micRequests = 0;
        const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
        navigator.mediaDevices.getUserMedia = (c) => {
          app.micRequests += 1;
          return original(c);
        };
      }
      try {
        const joined = await app.client.join(r, { joinToken: t });
        return { self: joined.self };
      } catch (error) {
        return { code: /** @type {any} */ (error).code, message: String(/** @type {any} */ (error).message) };
      }
    },
    [room, joinToken],
  );
}

test('a listen-only join token lets a page with no account hear the room, with no microphone asked for', { timeout: 180_000 }, async () => {
  const room = unique('embed-');
  const ann = await userInBrowser('Ann', { baseUrl: /** @type {any} */ (stack).url, toneHz: 440 });
  await joinRoom(ann, room);

  const lis = await launch({ baseUrl: /** @type {any} */ (stack).url });
  await lis.page.goto(`${lis.baseUrl}/`);
  await lis.page.locator('#login-username').waitFor({ state: 'visible' });
  const joined = await joinWithToken(lis.page, room, token({ room, speak: false }));
  assert.ok(joined.self, JSON.stringify(joined));
  assert.match(joined.self.userId, new RegExp(`^app:${KEY_ID}:`));
  assert.equal(joined.self.listenOnly, true);
  assert.equal(joined.self.muted, true);
  await waitFor(
    async () => (await inboundAudio(lis.page)).some((r) => r.name === 'Ann' && r.packetsReceived > 0 && r.totalAudioEnergy > 0),
    { timeoutMs: 30_000, what: 'the token holder hearing Ann', describe: async () => JSON.stringify(await inboundAudio(lis.page)) },
  );
  const state = await lis.page.evaluate(() => {
    const app = /** @type {any} */ (globalThis).tincanApp;
    return { micRequests: app.micRequests, localStream: app.client.localStream !== null, signedIn: app.client.session.current !== null };
  });
  assert.deepEqual(state, { micRequests: 0, localStream: false, signedIn: false });
  // Ann's page lists the listener, muted.
  await waitFor(
    () =>
      ann.page.evaluate(
        (id) => /** @type {any} */ (globalThis).tincanApp.client.participants.get(id)?.muted === true,
        joined.self.peerId,
      ),
    { timeoutMs: 10_000, what: 'Ann seeing the listener, muted' },
  );
});

test('a forged, an expired and a wrong-room join token are refused with stable codes', { timeout: 120_000 }, async () => {
  const room = unique('embed-');
  const page = (await launch({ baseUrl: /** @type {any} */ (stack).url })).page;
  await page.goto(`${/** @type {any} */ (stack).url}/`);
  await page.locator('#login-username').waitFor({ state: 'visible' });

  const forged = await joinWithToken(page, room, token({ room, speak: true, secret: crypto.randomBytes(32).toString('hex') }));
  assert.equal(forged.code, 'join-token-refused', JSON.stringify(forged));

  const expired = await joinWithToken(page, room, token({ room, speak: true, now: Math.floor(Date.now() / 1000) - 3600 }));
  assert.equal(expired.code, 'join-token-expired', JSON.stringify(expired));

  const other = await joinWithToken(page, room, token({ room: `${room}-other`, speak: true }));
  assert.equal(other.code, 'join-token-room', JSON.stringify(other));

  const garbage = await joinWithToken(page, room, 'not-a-token');
  assert.equal(garbage.code, 'join-token-invalid', JSON.stringify(garbage));
});
