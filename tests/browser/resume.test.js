// Signaling sockets that the server cuts (API Gateway's 2-hour cap, here
// TINCAN_MAX_CONNECTION_SECS): the client reconnects and resumes, keeping
// its peer connections, so the call goes on; a refused resume falls back to
// a full rejoin. Each test starts its own tincan-local with short limits.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  userInBrowser,
  joinRoom,
  expectAudioFrom,
  inboundAudio,
  participantNames,
  waitFor,
  unique,
  expiredAccessToken,
  report,
  screenshot,
  startStack,
  recordClientEvents,
  clientEvents,
  linkIds,
  closeAll,
} from './helpers.js';

afterEach(closeAll);

/** @param {import('playwright-core').Page} page */
const selfId = (page) => page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.self?.peerId ?? null);

/**
 * Waits until the page has seen `count` events of `type` (recorded by recordClientEvents).
 * @param {import('playwright-core').Page} page
 */
async function waitForEvents(page, type, count, timeoutMs) {
  return waitFor(
    async () => {
      const events = (await clientEvents(page)).filter((e) => e.type === type);
      return events.length >= count && events;
    },
    { timeoutMs, what: `${count} ${type} event(s)`, describe: async () => JSON.stringify(await clientEvents(page)) },
  );
}

test('the socket drops under a call: the page resumes at once and keeps its connection', { timeout: 90_000 }, async () => {
  const room = unique('drop-');
  const pia = await userInBrowser('Pia');
  const quinn = await userInBrowser('Quinn');
  await joinRoom(pia, room);
  await joinRoom(quinn, room);
  await expectAudioFrom(pia.page, ['Quinn']);
  await expectAudioFrom(quinn.page, ['Pia']);
  await recordClientEvents(pia.page);
  await recordClientEvents(quinn.page);
  const before = { id: await selfId(pia.page), links: [await linkIds(pia.page), await linkIds(quinn.page)] };
  for (let drop = 1; drop <= 3; drop += 1) {
    // What a network blip looks like to the page: its socket closes.
    await pia.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.channel.ws.close(4000, 'test drop'));
    const resumes = await waitForEvents(pia.page, 'resumed', drop, 15_000);
    report(`page-side drop ${drop} -> resumed`, resumes[drop - 1].ms, 'ms');
  }
  assert.equal(await selfId(pia.page), before.id);
  assert.deepEqual([await linkIds(pia.page), await linkIds(quinn.page)], before.links);
  for (const page of [pia.page, quinn.page]) {
    const seen = (await clientEvents(page)).map((e) => e.type);
    assert.ok(!seen.includes('peer-left') && !seen.includes('joined'), `no peer-left, no rejoin: ${seen}`);
  }
  await expectAudioFrom(pia.page, ['Quinn']);
  await expectAudioFrom(quinn.page, ['Pia']);
});

test('server cuts the socket: the page refreshes its token, resumes, and keeps its connection', { timeout: 120_000 }, async () => {
  const stack = await startStack('cut-resume', { TINCAN_MAX_CONNECTION_SECS: '10' });
  try {
    const room = unique('cut-');
    const hal = await userInBrowser('Hal', { baseUrl: stack.url });
    const ida = await userInBrowser('Ida', { baseUrl: stack.url });
    await joinRoom(hal, room);
    await joinRoom(ida, room);
    await expectAudioFrom(hal.page, ['Ida']);
    await expectAudioFrom(ida.page, ['Hal']);
    await recordClientEvents(hal.page);
    await recordClientEvents(ida.page);
    const before = { hal: await selfId(hal.page), links: [await linkIds(hal.page), await linkIds(ida.page)] };

    // An access token the server refuses as expired while the client still
    // believes it valid: the reconnect must refresh it to get back in.
    const refused = expiredAccessToken({ id: 'whoever', displayName: 'Hal' });
    await hal.page.evaluate((token) => {
      /** @type {any} */ (globalThis).tincanApp.client.session.current.accessToken = token;
    }, refused);

    const [resumed] = await waitForEvents(hal.page, 'resumed', 1, 30_000);
    const events = await clientEvents(hal.page);
    const cut = events.find((e) => e.type === 'reconnecting');
    assert.ok(cut, 'the page saw the cut');
    report('socket cut -> resumed (with a token refresh)', resumed.at - cut.at, 'ms');

    assert.equal(await selfId(hal.page), before.hal, 'the same participant id');
    assert.notEqual(
      await hal.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.client.session.current.accessToken),
      refused,
      'the refused token was replaced by a refreshed one',
    );
    assert.match(await hal.page.locator('#call-status').textContent(), /call went on/);
    assert.ok(await hal.page.locator('#banner').isHidden(), 'no banner after a quick resume');
    // Nobody left or rejoined; the peer connections are the same objects.
    for (const page of [hal.page, ida.page]) {
      const seen = (await clientEvents(page)).map((e) => e.type);
      assert.ok(!seen.includes('peer-left'), `no peer-left: ${seen}`);
      assert.ok(!seen.includes('joined'), `no rejoin: ${seen}`);
    }
    assert.deepEqual([await linkIds(hal.page), await linkIds(ida.page)], before.links);
    assert.equal((await participantNames(ida.page)).length, 2);
    await expectAudioFrom(hal.page, ['Ida']);
    await expectAudioFrom(ida.page, ['Hal']);
    await screenshot(hal.page, 'call-after-resume.png');
  } finally {
    await closeAll();
    await stack.stop();
  }
});

test('a refused resume falls back to a full rejoin and the call comes back', { timeout: 120_000 }, async () => {
  const stack = await startStack('resume-refused', { TINCAN_MAX_CONNECTION_SECS: '10', TINCAN_RESUME_GRACE_SECS: '4' });
  try {
    const room = unique('refused-');
    const jan = await userInBrowser('Jan', { baseUrl: stack.url });
    const kai = await userInBrowser('Kai', { baseUrl: stack.url });
    await joinRoom(jan, room);
    await joinRoom(kai, room);
    await expectAudioFrom(jan.page, ['Kai']);
    await recordClientEvents(jan.page);
    await recordClientEvents(kai.page);
    const oldId = await selfId(jan.page);
    // A credential the server does not know: every `resume` Jan's page
    // sends from now on (the cut comes at the 10 s lifetime) carries a
    // spoilt token.
    await jan.page.evaluate(() => {
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        const msg = typeof data === 'string' && data.includes('"resume"') ? JSON.parse(data) : null;
        return send.call(this, msg?.action === 'resume' ? JSON.stringify({ ...msg, token: `x${msg.token}` }) : data);
      };
    });
    const [failed] = await waitForEvents(jan.page, 'resume-failed', 1, 30_000);
    assert.equal(failed.code, 'resume-failed');
    const [joined] = await waitForEvents(jan.page, 'joined', 1, 15_000);
    report('socket cut -> rejoined after a refused resume', joined.at - failed.at, 'ms after the refusal');
    const newId = await selfId(jan.page);
    assert.ok(newId && newId !== oldId, 'a full rejoin is a new participant');
    await expectAudioFrom(jan.page, ['Kai']);
    await expectAudioFrom(kai.page, ['Jan']);
    // Kai: Jan's old participant leaves after the grace; one link remains, to the new one.
    await waitFor(
      async () => {
        const peers = await kai.page.evaluate(() => [.../** @type {any} */ (globalThis).tincanApp.client.peers.keys()]);
        return peers.length === 1 && peers[0] === newId;
      },
      { timeoutMs: 20_000, what: "Kai's only link is to Jan's new participant" },
    );
    assert.equal((await participantNames(kai.page)).length, 2);
  } finally {
    await closeAll();
    await stack.stop();
  }
});

test('a 40 s call through socket cuts every 12 s: audio never stops, nobody leaves', { timeout: 150_000 }, async () => {
  const stack = await startStack('cuts-40s', { TINCAN_MAX_CONNECTION_SECS: '12' });
  try {
    const room = unique('cuts-');
    const lea = await userInBrowser('Lea', { baseUrl: stack.url });
    const max = await userInBrowser('Max', { baseUrl: stack.url });
    await joinRoom(lea, room);
    await joinRoom(max, room);
    await expectAudioFrom(lea.page, ['Max']);
    await expectAudioFrom(max.page, ['Lea']);
    const pages = [lea.page, max.page];
    for (const page of pages) await recordClientEvents(page);
    const links = [await linkIds(lea.page), await linkIds(max.page)];

    // Every second, on both pages, inbound packets and audio energy rose.
    let last = await Promise.all(pages.map((p) => inboundAudio(p)));
    const started = Date.now();
    let seconds = 0;
    while (Date.now() - started < 40_000) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await Promise.all(pages.map((p) => inboundAudio(p)));
      seconds += 1;
      for (const i of [0, 1]) {
        assert.equal(now[i].length, 1, `page ${i} has one peer connection at ${seconds} s`);
        const [a, b] = [last[i][0], now[i][0]];
        assert.ok(
          b.packetsReceived > a.packetsReceived && b.totalAudioEnergy > a.totalAudioEnergy,
          `page ${i}, second ${seconds}: packets ${a.packetsReceived} -> ${b.packetsReceived}, energy ${a.totalAudioEnergy} -> ${b.totalAudioEnergy}`,
        );
      }
      last = now;
    }
    for (const [i, page] of pages.entries()) {
      const events = await clientEvents(page);
      const types = events.map((e) => e.type);
      const resumes = events.filter((e) => e.type === 'resumed');
      assert.ok(resumes.length >= 2, `page ${i} resumed ${resumes.length} times: ${types}`);
      assert.ok(!types.includes('peer-left'), `page ${i} saw no peer-left: ${types}`);
      assert.ok(!types.includes('joined'), `page ${i} never rejoined: ${types}`);
      assert.ok(!types.includes('resume-failed'), `page ${i}: no refused resume: ${types}`);
      for (const r of resumes) report(`socket cut -> resumed (page ${i})`, r.ms, 'ms');
    }
    assert.deepEqual([await linkIds(lea.page), await linkIds(max.page)], links, 'the same RTCPeerConnections throughout');
  } finally {
    await closeAll();
    await stack.stop();
  }
});
