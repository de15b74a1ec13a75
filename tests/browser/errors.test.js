// Bad paths show a clear message and nothing hangs: wrong password, a taken
// username, a full room, an expired session, a denied microphone, a bad room
// name.

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
  SMALL_URL,
  BASE_URL,
  closeAll,
} from './helpers.js';

afterEach(closeAll);

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

    await b.page.locator('#sign-out').click();
    await b.page.locator('#auth-view').waitFor({ state: 'visible' });
    await b.page.locator('#login-username').fill(username);
    await b.page.locator('#login-password').fill('wrong password');
    await b.page.locator('#login-button').click();
    assert.equal(await alertText(b.page), 'Wrong username or password.');
    assert.ok(await b.page.locator('#auth-view').isVisible());
    assert.ok(await b.page.locator('#login-button').isEnabled(), 'the form is usable again');
    await screenshot(b.page, 'error-wrong-password.png');

    await b.page.locator('#register-username').fill(username.toUpperCase());
    await b.page.locator('#register-display-name').fill('Kim again');
    await b.page.locator('#register-password').fill('another password');
    await b.page.locator('#register-button').click();
    await b.page.locator('#alert-text').filter({ hasText: 'already taken' }).waitFor();
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
    assert.equal(await alertText(ned.page), 'This room is full. Try again later, or pick another room.');
    assert.ok(await ned.page.locator('#lobby-view').isVisible());
    assert.ok(await ned.page.locator('#join-button').isEnabled());
    await screenshot(ned.page, 'error-room-full.png');
    // The microphone was released.
    assert.equal(await ned.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.mic), null);

    // When someone leaves, the room has space again.
    await max.page.locator('#leave-button').click();
    await ned.page.locator('#join-button').click();
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

test('a denied microphone and a bad room name explain themselves', { timeout: 60_000 }, async () => {
  // Without the fake permission UI, Chromium denies the prompt.
  const b = await launch({ args: ['--deny-permission-prompts'], withoutArgs: ['--use-fake-ui-for-media-stream'] });
  try {
    const username = unique('quinn');
    await registerUser(BASE_URL, username, 'pass-word-123', 'Quinn');
    await signIn(b, username, 'pass-word-123');
    await b.page.locator('#room-input').fill('no spaces allowed');
    await b.page.locator('#join-button').click();
    assert.match(await alertText(b.page), /Room names are 1–64 letters/);

    await b.page.locator('#room-input').fill(unique('mic-'));
    await b.page.locator('#join-button').click();
    await b.page.locator('#alert-text').filter({ hasText: 'Microphone access was denied' }).waitFor();
    assert.ok(await b.page.locator('#lobby-view').isVisible());
    await screenshot(b.page, 'error-microphone-denied.png');
  } finally {
    await b.close();
  }
});
