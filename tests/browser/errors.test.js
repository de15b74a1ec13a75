// Bad paths show a clear message and nothing hangs: wrong password, a taken
// username (next to their fields), a full room, an expired session, a
// denied microphone (join listen-only instead), a bad room name, and a
// rate-limited sign-in that counts down the server's wait.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch,
  registerUser,
  signIn,
  userInBrowser,
  joinRoom,
  unique,
  expiredAccessToken,
  screenshot,
  expectAudioFrom,
  participantNames,
  waitFor,
  SMALL_URL,
  BASE_URL,
  closeAll,
} from './helpers.js';

afterEach(closeAll);

/** The error next to field `id` once it matches `pattern`, with the field marked invalid. */
async function fieldErrorOf(page, id, pattern) {
  await page.locator(`#${id}-error`).filter({ hasText: pattern }).waitFor({ timeout: 10_000 });
  assert.equal(await page.locator(`#${id}`).getAttribute('aria-invalid'), 'true', `${id} marked invalid`);
  assert.match((await page.locator(`#${id}`).getAttribute('aria-describedby')) ?? '', new RegExp(`${id}-error`));
  assert.ok(await page.locator('#alert').isHidden(), 'a field error is not a banner');
  return (await page.locator(`#${id}-error`).textContent()) ?? '';
}

/** The visible alert's text, once it shows. */
async function alertText(page) {
  const alert = page.locator('#alert');
  await alert.waitFor({ state: 'visible', timeout: 10_000 });
  return (await page.locator('#alert-text').textContent()) ?? '';
}

test('register through the page, then a wrong password and a taken username', { timeout: 60_000 }, async () => {
  const b = await launch();
  try {
    const username = unique('kim');
    await b.page.goto(BASE_URL);
    await b.page.getByLabel('Display name').fill('Kim');
    await b.page.locator('#register-username').fill(username);
    await b.page.locator('#register-password').fill('correct horse battery');
    await b.page.locator('#register-button').click();
    await b.page.locator('#lobby-view').waitFor({ state: 'visible' });
    assert.match(await b.page.locator('#account-name').textContent(), /Kim/);

    await b.page.locator('#account-button').click();
    await b.page.locator('#sign-out').click();
    await b.page.locator('#auth-view').waitFor({ state: 'visible' });
    await b.page.locator('#login-username').fill(username);
    await b.page.locator('#login-password').fill('wrong password');
    await b.page.locator('#login-button').click();
    assert.equal(await fieldErrorOf(b.page, 'login-password', 'Wrong'), 'Wrong username or password.');
    assert.ok(await b.page.locator('#auth-view').isVisible());
    assert.ok(await b.page.locator('#login-button').isEnabled(), 'the form is usable again');
    await screenshot(b.page, 'error-wrong-password.png');

    await b.page.locator('#register-username').fill(username.toUpperCase());
    await b.page.locator('#register-display-name').fill('Kim again');
    await b.page.locator('#register-password').fill('another password');
    await b.page.locator('#register-button').click();
    await fieldErrorOf(b.page, 'register-username', 'already taken');
    // Typing clears it.
    await b.page.locator('#register-username').fill(unique('kim'));
    assert.ok(await b.page.locator('#register-username-error').isHidden());
    assert.equal(await b.page.locator('#register-username').getAttribute('aria-invalid'), null);
  } finally {
    await b.close();
  }
});

test('a full room says so and the page stays usable', { timeout: 120_000 }, async () => {
  assert.ok(SMALL_URL, 'run.sh passes TINCAN_SMALL_URL (a server with TINCAN_ROOM_MAX=2)');
  const room = unique('full-');
  const opts = { baseUrl: SMALL_URL };
  const people = [await userInBrowser('Lee', opts), await userInBrowser('Max', opts), await userInBrowser('Ned', opts)];
  const [lee, max, ned] = people;
  try {
    await joinRoom(lee, room);
    await joinRoom(max, room);
    await ned.page.locator('#room-input').fill(room);
    await ned.page.locator('#join-button').click();
    await ned.page.locator('#join-now').click();
    assert.equal(await alertText(ned.page), 'This room is full. Try again later, or pick another room.');
    assert.ok(await ned.page.locator('#prejoin-view').isVisible());
    await waitFor(() => ned.page.locator('#join-now').isEnabled(), { what: 'Join now usable again' });
    await screenshot(ned.page, 'error-room-full.png');
    // The microphone was released.
    assert.equal(await ned.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.mic), null);

    // When someone leaves, the room has space again.
    await max.page.locator('#leave-button').click();
    await ned.page.locator('#join-now').click();
    await ned.page.locator('#call-view').waitFor({ state: 'visible' });
  } finally {
    await Promise.all(people.map((p) => p.close()));
  }
});

test('an expired session asks to sign in again', { timeout: 60_000 }, async () => {
  const b = await launch();
  try {
    const username = unique('ola');
    const user = await registerUser(BASE_URL, username, 'pass-word-123', 'Ola');
    await signIn(b, username, 'pass-word-123');
    // The refresh token is revoked (as after a logout elsewhere, or its TTL)
    // and the access token has expired.
    const session = await b.page.evaluate(() => JSON.parse(localStorage.getItem('tincan.session')));
    const res = await fetch(`${BASE_URL}/auth/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: session.refreshToken }),
    });
    assert.ok(res.ok, `logout answered ${res.status}`);
    await b.page.evaluate((token) => {
      const s = JSON.parse(localStorage.getItem('tincan.session'));
      localStorage.setItem('tincan.session', JSON.stringify({ ...s, accessToken: token }));
    }, expiredAccessToken(user));
    await b.page.reload();
    assert.equal(await alertText(b.page), 'Your session has expired. Please sign in again.');
    await b.page.locator('#auth-view').waitFor({ state: 'visible' });
    await screenshot(b.page, 'error-session-expired.png');
  } finally {
    await b.close();
  }
});

test('an expired session is refreshed silently while the refresh token is good', { timeout: 60_000 }, async () => {
  const pia = await userInBrowser('Pia');
  try {
    const user = await pia.page.evaluate(() => JSON.parse(localStorage.getItem('tincan.session')).user);
    await pia.page.evaluate((token) => {
      const s = JSON.parse(localStorage.getItem('tincan.session'));
      localStorage.setItem('tincan.session', JSON.stringify({ ...s, accessToken: token }));
    }, expiredAccessToken(user));
    await pia.page.reload();
    await pia.page.locator('#lobby-view').waitFor({ state: 'visible' });
    await joinRoom(pia, unique('solo-'));
    assert.ok(await pia.page.locator('#alert').isHidden());
  } finally {
    await pia.close();
  }
});

test('a denied microphone offers a listen-only join, which hears the room; a bad room name is explained', { timeout: 90_000 }, async () => {
  // Without the fake permission UI, Chromium denies the prompt.
  const b = await launch({ args: ['--deny-permission-prompts'], withoutArgs: ['--use-fake-ui-for-media-stream'] });
  // Counts the page's requests for a microphone.
  await b.context.addInitScript(() => {
    const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    /** @type {any} */ (globalThis).micRequests = 0;
    navigator.mediaDevices.getUserMedia = (constraints) => {
      /** @type {any} */ (globalThis).micRequests += 1;
      return original(constraints);
    };
  });
  const room = unique('listen-');
  const talker = await userInBrowser('Tal');
  try {
    const username = unique('quinn');
    await registerUser(BASE_URL, username, 'pass-word-123', 'Quinn');
    await signIn(b, username, 'pass-word-123');
    await b.page.locator('#room-input').fill('no spaces allowed');
    await b.page.locator('#join-button').click();
    assert.match(await fieldErrorOf(b.page, 'room-input', 'Room names'), /Room names are 1–64 letters/);
    assert.ok(await b.page.locator('#lobby-view').isVisible());

    await joinRoom(talker, room);
    await b.page.locator('#room-input').fill(room);
    await b.page.locator('#join-button').click();
    await b.page.locator('#join-now').click();
    await b.page.locator('#mic-problem').filter({ hasText: 'Microphone access was denied' }).waitFor();
    assert.ok(await b.page.locator('#prejoin-view').isVisible(), 'still on the pre-join view, not failed');
    await screenshot(b.page, 'error-microphone-denied.png');
    const asked = await b.page.evaluate(() => /** @type {any} */ (globalThis).micRequests);

    await b.page.getByRole('button', { name: 'Join listen-only' }).click();
    await b.page.locator('#call-view').waitFor({ state: 'visible' });
    assert.ok(await b.page.locator('#listen-only-badge').isVisible());
    assert.ok(await b.page.locator('#mute-button').isHidden());
    assert.equal(await b.page.evaluate(() => /** @type {any} */ (globalThis).micRequests), asked, 'no microphone asked for');
    assert.equal(await b.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.mic), null);
    // The listener hears the talker, and the talker sees the listener.
    await expectAudioFrom(b.page, ['Tal']);
    await waitFor(async () => (await participantNames(talker.page)).some((n) => n.startsWith('Quinn')), {
      what: 'the listener in the talker\'s list',
    });
    await screenshot(b.page, 'call-listen-only.png');
  } finally {
    await Promise.all([b.close(), talker.close()]);
  }
});

test('a rate-limited sign-in shows the server\'s wait and counts it down', { timeout: 60_000 }, async () => {
  const b = await launch();
  try {
    const username = unique('rex');
    await registerUser(BASE_URL, username, 'pass-word-123', 'Rex');
    // Spend the failed-login quota for this username from this address
    // (TINCAN_LOGIN_FAILURES_PER_USER_ADDR, 10 by default).
    let retryAfter = null;
    for (let i = 0; i < 20 && retryAfter === null; i++) {
      const res = await fetch(`${BASE_URL}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password: 'not it' }),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status === 429) retryAfter = Number(res.headers.get('retry-after'));
      else assert.equal(res.status, 401);
    }
    assert.ok(retryAfter && retryAfter > 1, `the server throttles and says for how long (${retryAfter})`);

    await b.page.goto(BASE_URL);
    await b.page.locator('#login-username').fill(username);
    await b.page.locator('#login-password').fill('pass-word-123');
    await b.page.locator('#login-button').click();
    const text = await alertText(b.page);
    const shown = Number(/^Too many attempts: try again in (\d+) s$/.exec(text)?.[1]);
    assert.ok(shown > 0 && shown <= retryAfter, `"${text}" against Retry-After ${retryAfter}`);
    assert.equal(await b.page.locator('#retry-seconds').getAttribute('aria-live'), 'off', 'not read out every second');
    await screenshot(b.page, 'error-rate-limited.png');
    // It counts down.
    await waitFor(async () => {
      const now = Number(/try again in (\d+) s/.exec((await b.page.locator('#alert-text').textContent()) ?? '')?.[1]);
      return now < shown;
    }, { what: 'the countdown to go down', timeoutMs: 5_000 });
    // Escape dismisses it.
    await b.page.keyboard.press('Escape');
    await b.page.locator('#alert').waitFor({ state: 'hidden' });
  } finally {
    await b.close();
  }
});
