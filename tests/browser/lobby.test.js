// The lobby (a new room with a copyable invite link), an invite link that
// names the room on the sign-in page and lands in its pre-join view after
// sign-in or registration, the pre-join view's check, the account view,
// the call's controls (M mutes, Space held talks while muted; the control
// bar stays in reach on a phone; the call timer), Escape on alerts, and an
// axe-core scan of every view with no violations. Run through run.sh.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { launch, registerUser, signIn, joinRoom, waitFor, unique, report, screenshot, closeAll } from './helpers.js';
import { axeProblems } from './axe.js';

afterEach(closeAll);

/** A registered user (through the API) and a fresh password. */
async function account(browser, name) {
  const username = unique(name.toLowerCase());
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  await registerUser(browser.baseUrl, username, password, name);
  return { username, password };
}

test('sign-in, lobby and pre-join pass axe-core; the pre-call check hears the microphone and reaches TURN', { timeout: 90_000 }, async () => {
  const browser = await launch();
  const { page } = browser;
  await page.goto(`${browser.baseUrl}/`);
  await page.locator('#auth-view').waitFor({ state: 'visible' });
  assert.deepEqual(await axeProblems(page), [], 'sign-in and registration view');
  // With errors next to their fields.
  await page.locator('#login-button').click();
  await page.locator('#register-username').fill('someone');
  await page.locator('#register-password').fill('short');
  await page.locator('#register-button').click();
  await page.locator('#register-password-error').waitFor({ state: 'visible' });
  assert.deepEqual(await axeProblems(page), [], 'sign-in and registration view, with field errors');

  const { username, password } = await account(browser, 'Ada');
  await signIn(browser, username, password);
  assert.deepEqual(await axeProblems(page), [], 'lobby view');
  await page.locator('#new-room-button').click();
  await page.locator('#invite').waitFor({ state: 'visible' });
  assert.deepEqual(await axeProblems(page), [], 'lobby view, with an invite link');

  await page.locator('#join-button').click();
  await page.locator('#prejoin-view').waitFor({ state: 'visible' });
  assert.ok(await page.locator('#settings-view').isVisible(), 'devices on the pre-join view');
  assert.ok(await page.locator('#lobby-view').isHidden());
  const started = Date.now();
  await page.locator('#precall-button').click();
  await waitFor(async () => (await page.locator('#precall-verdict').getAttribute('data-verdict')) !== null, {
    timeoutMs: 15_000,
    what: 'a pre-call verdict',
  });
  report('pre-call check', Date.now() - started, 'ms');
  const result = await page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.precall);
  assert.equal(result.verdict, 'ready', JSON.stringify(result));
  assert.ok(result.microphone.peakLevel > 0.01);
  assert.ok(result.turn.ok && result.turn.protocols.length > 0, JSON.stringify(result.turn));
  assert.match((await page.locator('#precall-verdict').textContent()) ?? '', /^Ready/);
  assert.match((await page.locator('#precall-details').textContent()) ?? '', /Relay server: reachable/);
  assert.deepEqual(await axeProblems(page), [], 'pre-join view, with the check shown');

  // A relay that does not answer: a warning, not a pass.
  const unreachable = await page.evaluate(async () => {
    const { precallCheck } = await import('/tincan-client.js');
    const session = { request: async () => ({ iceServers: [{ urls: 'turn:127.0.0.1:9', username: '1:x', credential: 'x' }] }) };
    return precallCheck({ session, micMs: 300, turnTimeoutMs: 2000 });
  });
  assert.equal(unreachable.verdict, 'warning', JSON.stringify(unreachable));
  assert.equal(unreachable.turn.ok, false);
  assert.match(unreachable.messages.join(' '), /relay server is unreachable/);

  // Back: the lobby again, and the address no longer names the room.
  await page.locator('#prejoin-back').click();
  await page.locator('#lobby-view').waitFor({ state: 'visible' });
  assert.equal(new URL(page.url()).hash, '');
});

test('New room makes a readable name and a link that copies; no link, no "anyone with the link"', { timeout: 60_000 }, async () => {
  const browser = await launch();
  const { page, context } = browser;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: browser.baseUrl });
  const { username, password } = await account(browser, 'Cy');
  await signIn(browser, username, password);
  assert.ok(await page.locator('#invite').isHidden(), 'no link before there is a room name');
  assert.equal(await page.getByText('Anyone with the link can join').count(), 1);
  assert.ok(await page.getByText('Anyone with the link can join').isHidden());

  await page.locator('#new-room-button').click();
  const room = await page.locator('#room-input').inputValue();
  assert.match(room, /^[a-z]+-[a-z]+-\d{2}$/, 'a readable name');
  assert.match(room, /^[A-Za-z0-9_-]{1,64}$/, 'valid under the room-name rules');
  await page.getByText('Anyone with the link can join').waitFor({ state: 'visible' });
  const link = await page.locator('#invite-link').inputValue();
  assert.equal(link, `${browser.baseUrl}/#room=${room}`);
  await page.locator('#copy-invite').click();
  await page.locator('#copy-invite-status').filter({ hasText: 'Copied' }).waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), link);

  // Another press, another name; a name typed by hand gets its link too.
  await page.locator('#new-room-button').click();
  assert.notEqual(await page.locator('#room-input').inputValue(), room);
  await page.locator('#room-input').fill('team_standup');
  assert.equal(await page.locator('#invite-link').inputValue(), `${browser.baseUrl}/#room=team_standup`);
  await page.locator('#room-input').fill('not valid!');
  assert.ok(await page.locator('#invite').isHidden(), 'no link for a name that is not one');
  // A bad name is explained next to the field.
  await page.locator('#join-button').click();
  assert.match((await page.locator('#room-input-error').textContent()) ?? '', /Room names are 1–64 letters/);
  assert.equal(await page.locator('#room-input').getAttribute('aria-invalid'), 'true');
  assert.match((await page.locator('#room-input').getAttribute('aria-describedby')) ?? '', /room-input-error/);
  assert.ok(await page.locator('#alert').isHidden(), 'no banner for a field error');
});

test('an invite link names the room on the sign-in page and joins it after sign-in or registration', { timeout: 90_000 }, async () => {
  const room = unique('invite-');
  const host = await launch();
  const { username, password } = await account(host, 'Host');
  await host.page.goto(`${host.baseUrl}/#room=${room}`);
  await host.page.locator('#auth-view').waitFor({ state: 'visible' });
  assert.equal(await host.page.locator('#invite-note').textContent(), `Sign in to join room ${room}`);
  assert.deepEqual(await axeProblems(host.page), [], 'sign-in view with an invitation');
  await host.page.locator('#login-username').fill(username);
  await host.page.locator('#login-password').fill(password);
  await host.page.locator('#login-button').click();
  await host.page.locator('#prejoin-view').waitFor({ state: 'visible' });
  assert.equal(await host.page.locator('#prejoin-room').textContent(), room);
  await host.page.locator('#join-now').click();
  await host.page.locator('#call-view').waitFor({ state: 'visible' });
  assert.equal(await host.page.locator('#call-room').textContent(), room);

  // Someone new: registers from the invitation and lands in the same room.
  const guest = await launch();
  await guest.page.goto(`${guest.baseUrl}/#room=${room}`);
  await guest.page.locator('#invite-note').filter({ hasText: room }).waitFor();
  await guest.page.locator('#register-username').fill(unique('guest'));
  await guest.page.locator('#register-display-name').fill('Guest');
  await guest.page.locator('#register-password').fill('a long enough password');
  await guest.page.locator('#register-button').click();
  await guest.page.locator('#prejoin-view').waitFor({ state: 'visible' });
  assert.equal(await guest.page.locator('#prejoin-room').textContent(), room);
  await guest.page.locator('#join-now').click();
  await guest.page.locator('#call-view').waitFor({ state: 'visible' });
  await waitFor(async () => (await host.page.locator('#participants .participant').count()) === 2, {
    what: 'the guest in the host\'s call',
  });

  // Without an invitation, the sign-in page names no room.
  const plain = await launch();
  await plain.page.goto(`${plain.baseUrl}/`);
  await plain.page.locator('#auth-view').waitFor({ state: 'visible' });
  assert.ok(await plain.page.locator('#invite-note').isHidden());
});

test('account settings on their own view; Escape dismisses an alert', { timeout: 60_000 }, async () => {
  const browser = await launch();
  const { page } = browser;
  const { username, password } = await account(browser, 'Dee');
  await signIn(browser, username, password);
  assert.ok(await page.locator('#current-password').isHidden(), 'no password form in the lobby');
  await page.locator('#account-button').click();
  await page.locator('#account-view').waitFor({ state: 'visible' });
  assert.ok(await page.locator('#lobby-view').isHidden());
  assert.ok(await page.locator('#sign-out').isVisible());
  assert.deepEqual(await axeProblems(page), [], 'account view');
  await page.locator('#password-button').click();
  await page.locator('#current-password-error').waitFor({ state: 'visible' });
  assert.deepEqual(await axeProblems(page), [], 'account view, with a field error');
  await page.locator('#account-back').click();
  await page.locator('#lobby-view').waitFor({ state: 'visible' });

  await page.evaluate(() => {
    const alert = /** @type {HTMLElement} */ (document.getElementById('alert'));
    /** @type {HTMLElement} */ (document.getElementById('alert-text')).textContent = 'Something to dismiss.';
    alert.hidden = false;
  });
  await page.locator('#room-input').focus();
  await page.keyboard.press('Escape');
  await page.locator('#alert').waitFor({ state: 'hidden' });
});

test('call view passes axe-core; M toggles mute and Space held talks while muted', { timeout: 90_000 }, async () => {
  const browser = await launch();
  const { page } = browser;
  const { username, password } = await account(browser, 'Bob');
  await signIn(browser, username, password);
  await joinRoom(browser, unique('keys-'));
  await page.locator('#participants .participant').first().waitFor();
  assert.deepEqual(await axeProblems(page), [], 'call view');

  const muted = () => page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.muted);
  const pressed = () => page.locator('#mute-button').getAttribute('aria-pressed');
  await page.evaluate(() => /** @type {HTMLElement} */ (document.activeElement)?.blur());
  await page.keyboard.press('m');
  assert.equal(await muted(), true);
  assert.equal(await pressed(), 'true');
  // Push-to-talk: unmuted while Space is held, muted again on release.
  await page.keyboard.down('Space');
  await waitFor(async () => (await muted()) === false, { what: 'talking while Space is held' });
  assert.equal(await pressed(), 'false');
  await page.keyboard.up('Space');
  await waitFor(async () => (await muted()) === true, { what: 'muted again on release' });
  await page.keyboard.press('M');
  assert.equal(await muted(), false);
  // Typing in a field is not a shortcut.
  await page.locator('#mic-select').focus();
  await page.keyboard.press('m');
  assert.equal(await muted(), false);

  // The account view from a call: the call goes on, and Back returns to it.
  await page.locator('#account-button').click();
  await page.locator('#account-view').waitFor({ state: 'visible' });
  await page.locator('#account-back').click();
  await page.locator('#call-view').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.state), 'joined');
});

test('on a phone, Mute and Leave stay in view with 8 participants; the call timer counts', { timeout: 90_000 }, async () => {
  const browser = await launch({ viewport: { width: 390, height: 844 } });
  const { page } = browser;
  const { username, password } = await account(browser, 'Eli');
  await signIn(browser, username, password);
  await joinRoom(browser, unique('phone-'));
  await page.locator('#participants .participant').first().waitFor();
  // Seven more rows, as the participant list draws them (the layout is
  // what is under test, not the call).
  await page.evaluate(() => {
    const list = /** @type {HTMLElement} */ (document.getElementById('participants'));
    const template = /** @type {HTMLTemplateElement} */ (document.getElementById('participant-template'));
    for (let i = 1; i <= 7; i++) {
      const li = /** @type {HTMLElement} */ (/** @type {DocumentFragment} */ (template.content.cloneNode(true)).firstElementChild);
      /** @type {HTMLElement} */ (li.querySelector('.name')).textContent = `Guest ${i}`;
      li.querySelector('.meter')?.setAttribute('aria-label', `Guest ${i} audio level`);
      list.append(li);
    }
  });
  assert.equal(await page.locator('#participants .participant').count(), 8);
  const scrollable = await page.evaluate(() => document.documentElement.scrollHeight > window.innerHeight);
  assert.ok(scrollable, 'the page is longer than the screen');

  /** Both buttons wholly inside the viewport. */
  const inView = async () => {
    for (const id of ['mute-button', 'leave-button']) {
      const box = await page.locator(`#${id}`).boundingBox();
      assert.ok(box, `${id} is shown`);
      assert.ok(box.y >= 0 && box.y + box.height <= 844 && box.x >= 0 && box.x + box.width <= 390, `${id} at ${JSON.stringify(box)}`);
    }
  };
  await page.evaluate(() => window.scrollTo(0, 0));
  await inView();
  await screenshot(page, 'call-phone-8-participants.png');
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await inView();
  // Nothing hides under the bar: the end of the page scrolls clear of it.
  const last = await page.locator('#settings-view').boundingBox();
  const bar = await page.locator('.call-bar').boundingBox();
  assert.ok(last && bar && last.y + last.height <= bar.y, `page end ${JSON.stringify(last)} above the bar ${JSON.stringify(bar)}`);

  // The timer: mm:ss since joining, not read out every second.
  const timer = page.locator('#call-timer');
  assert.equal(await timer.getAttribute('aria-live'), 'off');
  assert.match((await timer.textContent()) ?? '', /^\d\d:\d\d$/);
  await waitFor(async () => /^\d\d:\d\d$/.test((await timer.textContent()) ?? '') && (await timer.textContent()) !== '00:00', {
    what: 'the timer past 00:00',
  });
  await page.locator('#leave-button').click();
  await page.locator('#lobby-view').waitFor({ state: 'visible' });
  assert.equal(await timer.textContent(), '00:00');
});
