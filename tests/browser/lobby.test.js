// The lobby's pre-call check, the call's keyboard controls (M mutes,
// Space held talks while muted), and an axe-core scan of every view
// (sign-in, lobby, call) with no serious or critical violations. Run
// through run.sh.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { launch, registerUser, signIn, joinRoom, waitFor, unique, report, closeAll } from './helpers.js';

afterEach(closeAll);

const AXE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules', 'axe-core', 'axe.min.js');

/**
 * Runs axe-core on the page as it is; returns the serious and critical
 * violations, one line each.
 * @param {import('playwright-core').Page} page
 */
async function axeProblems(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not
  // govern (a <script> tag would be refused: no inline scripts).
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(fs.readFileSync(AXE, 'utf8'));
  const violations = await page.evaluate(async () => {
    const result = await /** @type {any} */ (globalThis).axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((/** @type {any} */ v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((/** @type {any} */ n) => n.target.join(' ')).slice(0, 5),
    }));
  });
  for (const v of violations) console.log(`axe ${v.impact} ${v.id}: ${v.help} (${v.targets.join(', ')})`);
  return violations
    .filter((/** @type {any} */ v) => v.impact === 'serious' || v.impact === 'critical')
    .map((/** @type {any} */ v) => `${v.id} (${v.impact}): ${v.help} at ${v.targets.join(', ')}`);
}

test('sign-in and lobby pass axe-core; the pre-call check hears the microphone and reaches TURN', { timeout: 90_000 }, async () => {
  const browser = await launch();
  const { page } = browser;
  await page.goto(`${browser.baseUrl}/`);
  await page.locator('#auth-view').waitFor({ state: 'visible' });
  assert.deepEqual(await axeProblems(page), [], 'sign-in view');

  const username = unique('ada');
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  await registerUser(browser.baseUrl, username, password, 'Ada');
  await signIn(browser, username, password);
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
  assert.deepEqual(await axeProblems(page), [], 'lobby view, with the check shown');

  // A relay that does not answer: a warning, not a pass.
  const unreachable = await page.evaluate(async () => {
    const { precallCheck } = await import('/tincan-client.js');
    const session = { request: async () => ({ iceServers: [{ urls: 'turn:127.0.0.1:9', username: '1:x', credential: 'x' }] }) };
    return precallCheck({ session, micMs: 300, turnTimeoutMs: 2000 });
  });
  assert.equal(unreachable.verdict, 'warning', JSON.stringify(unreachable));
  assert.equal(unreachable.turn.ok, false);
  assert.match(unreachable.messages.join(' '), /relay server is unreachable/);
});

test('call view passes axe-core; M toggles mute and Space held talks while muted', { timeout: 90_000 }, async () => {
  const browser = await launch();
  const { page } = browser;
  const username = unique('bob');
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  await registerUser(browser.baseUrl, username, password, 'Bob');
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
});
