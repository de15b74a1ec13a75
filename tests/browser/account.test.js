// Password change and account deletion from the page's account view (POST
// /me/password, DELETE /me): every refusal says what to do, next to the
// field it is about, and the results hold (the old password stops working;
// a deleted account cannot sign in).

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { userInBrowser, signIn, screenshot, closeAll } from './helpers.js';

afterEach(closeAll);

/** The text under a form once it matches `pattern`. */
async function statusOf(page, id, pattern) {
  await page.locator(`#${id}`).filter({ hasText: pattern }).waitFor({ timeout: 10_000 });
  return (await page.locator(`#${id}`).textContent()) ?? '';
}

/** The error next to field `id` once it matches `pattern`; the field is marked invalid and described by it. */
async function fieldErrorOf(page, id, pattern) {
  const text = await statusOf(page, `${id}-error`, pattern);
  assert.equal(await page.locator(`#${id}`).getAttribute('aria-invalid'), 'true', `${id} marked invalid`);
  assert.match((await page.locator(`#${id}`).getAttribute('aria-describedby')) ?? '', new RegExp(`${id}-error`));
  assert.ok(await page.locator('#alert').isHidden(), 'a field error is not a banner');
  return text;
}

/** Opens the account view from the header. */
async function openAccount(page) {
  await page.locator('#account-button').click();
  await page.locator('#account-view').waitFor({ state: 'visible' });
}

async function login(baseUrl, username, password) {
  const res = await fetch(`${baseUrl}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test('change password: refusals explain themselves, then the new password works', { timeout: 90_000 }, async () => {
  const rae = await userInBrowser('Rae');
  const { page } = rae;
  await openAccount(page);
  const fill = async (current, next, again) => {
    await page.locator('#current-password').fill(current);
    await page.locator('#new-password').fill(next);
    await page.locator('#confirm-password').fill(again);
    await page.locator('#password-button').click();
  };
  await fill(rae.password, 'short', 'short');
  await fieldErrorOf(page, 'new-password', 'at least 8 characters');
  await fill(rae.password, 'a new passphrase', 'another passphrase');
  await fieldErrorOf(page, 'confirm-password', 'not the same');
  assert.ok(await page.locator('#new-password-error').isHidden(), 'the earlier error is gone');
  await fill('not my password', 'a new passphrase', 'a new passphrase');
  await fieldErrorOf(page, 'current-password', 'Your current password is wrong.');
  assert.ok(await page.locator('#account-view').isVisible(), 'a wrong password does not sign anyone out');
  await screenshot(page, 'account-wrong-password.png');

  await fill(rae.password, 'a new passphrase', 'a new passphrase');
  await statusOf(page, 'password-status', 'Password changed');
  assert.equal(await page.locator('#current-password').inputValue(), '', 'the fields are cleared');
  // This page stays signed in and can still use the API.
  await page.reload();
  await page.locator('#lobby-view').waitFor({ state: 'visible' });

  assert.equal((await login(rae.baseUrl, rae.username, rae.password)).status, 401, 'the old password no longer works');
  assert.equal((await login(rae.baseUrl, rae.username, 'a new passphrase')).status, 200);
  await openAccount(page);
  await page.locator('#sign-out').click();
  await page.locator('#auth-view').waitFor({ state: 'visible' });
  await signIn(rae, rae.username, 'a new passphrase');
});

test('delete account: needs the password and a confirmation, then the account is gone', { timeout: 90_000 }, async () => {
  const sam = await userInBrowser('Sam');
  const { page } = sam;
  await openAccount(page);
  await page.locator('#delete-password').fill(sam.password);
  await page.locator('#delete-button').click();
  await fieldErrorOf(page, 'delete-confirm', 'Tick the box');
  await page.locator('#delete-password').fill('not my password');
  await page.locator('#delete-confirm').check();
  await page.locator('#delete-button').click();
  await fieldErrorOf(page, 'delete-password', 'That password is wrong; your account was not deleted.');
  assert.equal((await login(sam.baseUrl, sam.username, sam.password)).status, 200, 'still there');

  await page.locator('#delete-password').fill(sam.password);
  await page.locator('#delete-button').click();
  await page.locator('#auth-view').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#banner').textContent(), 'Your account was deleted.');
  assert.equal(await page.evaluate(() => localStorage.getItem('tincan.session')), null, 'the session is forgotten');
  const after = await login(sam.baseUrl, sam.username, sam.password);
  assert.equal(after.status, 401);
  assert.equal(after.body?.error?.code, 'invalid-credentials');
  // Signing in through the page says so plainly.
  await page.locator('#login-username').fill(sam.username);
  await page.locator('#login-password').fill(sam.password);
  await page.locator('#login-button').click();
  await fieldErrorOf(page, 'login-password', 'Wrong username or password.');
});
