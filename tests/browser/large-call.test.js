// A large call in the web app: six pages in one room on the main stack
// (one Chromium, a context per person),
// where TINCAN_MESH_MAX has its default (4), so the fifth join moves the room
// to the SFU. Three pages speak (a steady tone), three have a silent
// microphone. On every page every other participant has a row, the rows
// show no per-link state, the speakers' rows show speaking (from the
// client's participant model: on the SFU, the level measured on the slot
// that carries them) and the silent ones never do; the page says it is a
// large call, has one panel for the SFU link, and passes axe-core.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_URL, closeAll, joinRoom, launchShared, registerUser, report, sfuState, signIn, toneFileArg, unique, waitFor } from './helpers.js';

afterEach(closeAll);

const AXE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules', 'axe-core', 'axe.min.js');

/** A microphone that is on but silent (a Web Audio source at gain 0). */
function silentMicrophone() {
  const make = () => {
    navigator.mediaDevices.getUserMedia = async () => {
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      gain.gain.value = 0;
      const out = ctx.createMediaStreamDestination();
      osc.connect(gain).connect(out);
      osc.start();
      await ctx.resume().catch(() => {});
      return out.stream;
    };
  };
  return `(${make.toString()})();`;
}

/**
 * What each row of a page shows: speaking, its level meter, and any
 * per-link state that is visible (connection state, quality, stats panel).
 * @param {import('playwright-core').Page} page
 */
function rows(page) {
  return page.evaluate(() => {
    const visible = (/** @type {Element | null} */ el) => Boolean(el && /** @type {HTMLElement} */ (el).offsetParent !== null && el.textContent?.trim());
    return [...document.querySelectorAll('#participants .participant:not(.self)')].map((li) => ({
      id: /** @type {HTMLElement} */ (li).dataset.peerId,
      speaking: li.classList.contains('speaking') && getComputedStyle(/** @type {HTMLElement} */ (li.querySelector('.speaking-badge'))).visibility === 'visible',
      level: Number(li.querySelector('.meter')?.getAttribute('aria-valuenow')),
      linkState: [li.querySelector('.conn-state'), li.querySelector('.quality'), li.querySelector('.stats')]
        .filter(visible)
        .map((el) => el?.textContent?.trim().slice(0, 40)),
    }));
  });
}

test('six pages of the web app (default mesh size): rows show speaking from the participant model and no link state', { timeout: 150_000 }, async () => {
  const t0 = Date.now();
  const phase = (/** @type {string} */ what) => console.log(`# large call: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const room = unique('six');
  const names = ['Ava', 'Bo', 'Cy', 'Di', 'Ed', 'Flo'];
  const speaks = (/** @type {number} */ i) => i % 2 === 0;
  // One Chromium, a context per person, signed in side by side, then
  // joined one after another.
  // The speakers' microphone is Chromium's fake device playing a tone file
  // (it keeps time on a starved machine, where a Web Audio tone falters);
  // the others replace it by silence.
  const pages = await launchShared(names.length, (i) => (speaks(i) ? {} : { initScript: silentMicrophone() }), { args: [toneFileArg(440)] });
  const users = await Promise.all(
    pages.map(async (browser, i) => {
      // Six pages with audio on two shared cores: loads can be slow.
      browser.context.setDefaultTimeout(45_000);
      const name = names[i];
      const username = unique(name.toLowerCase());
      const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
      await registerUser(BASE_URL, username, password, name);
      await signIn(browser, username, password);
      return { ...browser, name, speaks: speaks(i) };
    }),
  );
  phase('six pages signed in');
  for (const user of users) {
    await joinRoom(user, room);
    phase(`${user.name} joined`);
  }
  const ids = await Promise.all(users.map((u) => u.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId)));
  const speakers = new Set(ids.filter((_, i) => users[i].speaks));
  // Everyone on the SFU, connected, mesh links closed.
  const states = () => Promise.all(users.map(async (u) => ({ name: u.name, ...(await sfuState(u.page)) })));
  let lastLog = Date.now();
  await waitFor(
    async () => {
      const all = await states();
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        phase(`waiting for the SFU: ${JSON.stringify(all.map((s) => [s.name, s.mode, s.meshLinks, s.sfuState]))}`);
      }
      return all.every((s) => s.mode === 'sfu' && s.meshLinks === 0 && s.sfuState === 'connected');
    },
    { timeoutMs: 90_000, what: 'all six on the SFU', describe: async () => JSON.stringify(await states()) },
  );
  phase('all on the SFU');
  const started = Date.now();
  for (const [i, user] of users.entries()) {
    const others = ids.filter((_, j) => j !== i);
    /** @type {string[]} */
    const wrong = [];
    /** @type {Map<string, number>} the highest meter seen per row */
    const loudest = new Map();
    const seen = await waitFor(
      async () => {
        const r = await rows(user.page);
        const byId = new Map(r.map((row) => [row.id, row]));
        for (const row of r) {
          if (row.speaking && !speakers.has(/** @type {string} */ (row.id))) wrong.push(`${row.id} shown speaking`);
          loudest.set(/** @type {string} */ (row.id), Math.max(loudest.get(/** @type {string} */ (row.id)) ?? 0, row.level));
        }
        const meterMoved = (/** @type {string} */ id) => !speakers.has(id) || (loudest.get(id) ?? 0) > 0;
        return others.every((id) => byId.has(id) && byId.get(id)?.speaking === speakers.has(id) && meterMoved(id)) && r;
      },
      {
        timeoutMs: 10_000,
        intervalMs: 200,
        what: `${user.name}: the three speakers' rows speaking with their meters moving, the silent ones not`,
        describe: async () => JSON.stringify({ rows: await rows(user.page), speakers: [...speakers], sfu: await sfuState(user.page), audio: await user.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.playback?.context?.state ?? null) }),
      },
    );
    assert.deepEqual(wrong, [], `${user.name}: a silent participant was shown speaking`);
    for (const row of seen) {
      assert.deepEqual(row.linkState, [], `${user.name}: the row of ${row.id} shows link state`);
      if (speakers.has(/** @type {string} */ (row.id))) assert.ok((loudest.get(/** @type {string} */ (row.id)) ?? 0) > 0, `${user.name}: ${row.id}'s meter moves`);
    }
    assert.equal(seen.length, 5, `${user.name}: one row per other participant`);
    assert.ok(await user.page.locator('#large-call').isVisible(), `${user.name}: the large-call badge shows`);
    assert.ok(await user.page.locator('#sfu-panel').isVisible(), `${user.name}: the SFU connection panel shows`);
  }
  report('six pages on the SFU: every row right on every page after', (Date.now() - started) / 1000, 's');

  // axe-core on the call view of a large call.
  const { page } = users[0];
  await page.locator('#sfu-panel summary').click();
  await page.evaluate(fs.readFileSync(AXE, 'utf8'));
  phase('axe loaded');
  const violations = await page.evaluate(async () => {
    const result = await /** @type {any} */ (globalThis).axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((/** @type {any} */ v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((/** @type {any} */ n) => n.target.join(' ')).slice(0, 5).join(', ')}`);
  });
  assert.deepEqual(violations, [], 'axe-core on the call view of a large call');
});
