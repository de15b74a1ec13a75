// Group calls through the SFU of the embedded media node (docs/sfu.md), on
// a stack of its own with TINCAN_MESH_MAX=2: rooms of more than two move to
// the SFU, make-before-break.
//
// Chromium's fake microphone beeps (silence most of the time), and the node
// fills slots with whoever is loudest, so each page here speaks with its own
// steady tone (`launch`'s `toneHz`: a Web Audio oscillator stands in for
// getUserMedia).

import { test, after, before, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { closeAll, joinRoom, report, sfuState, startStack, unique, userInBrowser, waitFor } from './helpers.js';

/** @type {{url: string, stop: () => Promise<void>} | null} */
let stack = null;

before(async () => {
  stack = await startStack('sfu', { TINCAN_MESH_MAX: '2' });
});
after(async () => {
  await stack?.stop();
});
afterEach(closeAll);

/** A signed-in page of the stack whose microphone is a tone. */
const toneUser = (name, hz) => userInBrowser(name, { baseUrl: /** @type {any} */ (stack).url, toneHz: hz });

test('with TINCAN_MESH_MAX=2, four pages each get one SFU connection carrying the three others', { timeout: 180_000 }, async () => {
  const room = unique('group');
  const users = [];
  for (const [i, name] of ['Ann', 'Ben', 'Cid', 'Dot'].entries()) {
    const user = await toneUser(name, 300 + 150 * i);
    await joinRoom(user, room);
    users.push(user);
  }
  const ids = await Promise.all(users.map((u) => u.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId)));
  for (const [i, user] of users.entries()) {
    const others = ids.filter((_, j) => j !== i).sort();
    const first = await waitFor(
      async () => {
        const s = await sfuState(user.page);
        const heard = s.slots.filter((x) => x.peerId && x.packets > 0 && x.energy > 0).map((x) => x.peerId).sort();
        return s.mode === 'sfu' && s.meshLinks === 0 && s.sfuState === 'connected' && JSON.stringify(heard) === JSON.stringify(others) && s;
      },
      { timeoutMs: 45_000, what: `${user.name} on the SFU hearing the three others`, describe: async () => JSON.stringify(await sfuState(user.page)) },
    );
    // And it keeps flowing.
    await new Promise((r) => setTimeout(r, 1000));
    const later = await sfuState(user.page);
    for (const slot of first.slots) {
      const now = later.slots[slot.slot];
      assert.ok(now.packets > slot.packets && now.energy > slot.energy, `${user.name} slot ${slot.slot} stalled: ${JSON.stringify(later)}`);
    }
    // The page shows the path, in its one panel for the SFU link.
    const shown = await user.page.locator('#sfu-panel .s-path').textContent();
    assert.match(shown ?? '', /^SFU/);
  }
});

test('a two-page mesh call that a third page joins moves to the SFU without an audible gap', { timeout: 180_000 }, async () => {
  const room = unique('grow');
  const ann = await toneUser('Ann', 330);
  const ben = await toneUser('Ben', 550);
  await joinRoom(ann, room);
  await joinRoom(ben, room);
  const [annId, benId] = await Promise.all(
    [ann, ben].map((u) => u.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self.peerId)),
  );
  // In the mesh, each hears the other over its peer link.
  const meshHears = (page) =>
    waitFor(
      () =>
        page.evaluate(async () => {
          const client = /** @type {any} */ (globalThis).tincanApp.client;
          if (client.mode !== 'mesh' || client.peers.size !== 1) return false;
          const [link] = client.peers.values();
          let packets = 0;
          (await link.pc.getStats()).forEach((/** @type {any} */ s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'audio') packets = s.packetsReceived ?? 0;
          });
          return packets > 20;
        }),
      { timeoutMs: 30_000, what: 'mesh audio' },
    );
  await meshHears(ann.page);
  await meshHears(ben.page);

  // Each of the two samples, every 50 ms, whether audio from the other is
  // arriving (on the mesh link or on the SFU slot the node gives them), and
  // keeps the longest gap.
  const watch = (page, otherId) =>
    page.evaluate((other) => {
      const client = /** @type {any} */ (globalThis).tincanApp.client;
      const w = { lastAt: performance.now(), maxGapMs: 0, samples: 0, last: new Map(), sawSfu: false };
      /** @type {any} */ (globalThis).gapWatch = w;
      const tick = async () => {
        const sources = [];
        const link = client.peers.get(other);
        if (link) sources.push({ key: `mesh-${link.localId}`, pc: link.pc, mid: null });
        if (client.sfu) {
          const slot = client.sfu.speakers.findIndex((/** @type {any} */ s) => s?.peerId === other);
          if (slot >= 0) {
            w.sawSfu = true;
            sources.push({ key: `sfu-${slot}`, pc: client.sfu.pc, mid: client.sfu.slotTransceivers[slot].mid });
          }
        }
        let advanced = false;
        for (const src of sources) {
          const report = await src.pc.getStats().catch(() => null);
          report?.forEach((/** @type {any} */ s) => {
            if (s.type !== 'inbound-rtp' || s.kind !== 'audio' || (src.mid !== null && s.mid !== src.mid)) return;
            const key = `${src.key}`;
            const before = w.last.get(key) ?? 0;
            if ((s.packetsReceived ?? 0) > before) advanced = true;
            w.last.set(key, s.packetsReceived ?? 0);
          });
        }
        const now = performance.now();
        if (advanced) w.lastAt = now;
        w.maxGapMs = Math.max(w.maxGapMs, now - w.lastAt);
        w.samples += 1;
      };
      w.timer = setInterval(() => void tick(), 50);
    }, otherId);
  await watch(ann.page, benId);
  await watch(ben.page, annId);

  const cid = await toneUser('Cid', 770);
  await joinRoom(cid, room);
  for (const user of [ann, ben, cid]) {
    await waitFor(
      async () => {
        const s = await sfuState(user.page);
        return s.mode === 'sfu' && s.meshLinks === 0 && s.sfuState === 'connected' && s.slots.filter((x) => x.peerId && x.packets > 0).length === 2;
      },
      { timeoutMs: 45_000, what: `${user.name} on the SFU hearing both others`, describe: async () => JSON.stringify(await sfuState(user.page)) },
    );
  }
  // A few more seconds on the SFU alone.
  await new Promise((r) => setTimeout(r, 3000));
  for (const [user, name] of [
    [ann, 'Ann'],
    [ben, 'Ben'],
  ]) {
    const w = await /** @type {any} */ (user).page.evaluate(() => {
      const g = /** @type {any} */ (globalThis).gapWatch;
      clearInterval(g.timer);
      return { maxGapMs: g.maxGapMs, samples: g.samples, sawSfu: g.sawSfu };
    });
    report(`mesh-to-SFU switch: longest inbound audio gap on ${name}`, w.maxGapMs, 'ms');
    assert.ok(w.sawSfu, `${name} never heard the other through the SFU`);
    assert.ok(w.samples > 50, `${name}: too few samples (${w.samples})`);
    assert.ok(w.maxGapMs < 1000, `${name}: inbound audio stalled for ${Math.round(w.maxGapMs)} ms`);
  }
});

test('clients that can only relay reach the SFU through the same node\'s TURN', { timeout: 180_000 }, async () => {
  const room = unique('relayed');
  const users = [];
  for (const [i, name] of ['Rae', 'Sid', 'Tom'].entries()) {
    const user = await toneUser(name, 350 + 200 * i);
    // `?relay=1`: TURN candidates only, for the mesh and the SFU alike.
    await user.page.goto(`${user.baseUrl}/?relay=1`);
    await user.page.locator('#lobby-view').waitFor({ state: 'visible' });
    await joinRoom(user, room);
    users.push(user);
  }
  for (const user of users) {
    await waitFor(
      async () => {
        const s = await sfuState(user.page);
        return s.mode === 'sfu' && s.meshLinks === 0 && s.sfuState === 'connected' && s.slots.filter((x) => x.peerId && x.packets > 0 && x.energy > 0).length === 2;
      },
      { timeoutMs: 45_000, what: `${user.name} hearing both others through the relay`, describe: async () => JSON.stringify(await sfuState(user.page)) },
    );
    const path = await user.page.evaluate(async () => {
      const client = /** @type {any} */ (globalThis).tincanApp.client;
      return (await client.sfu.stats()).path;
    });
    assert.equal(path, 'relayed', `${user.name}'s SFU connection goes through TURN`);
  }
});

