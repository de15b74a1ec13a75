// Opus tuned for speech: in-band FEC always, DTX and a bitrate cap as
// options, RED where Chromium offers it; the SDP each side applies says so
// and the connection panel shows it. Run through run.sh.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { launch, registerUser, signIn, joinRoom, expectAudioFrom, unique, report, waitFor, closeAll } from './helpers.js';
import { tuneOpusSdp, opusParams } from '../../web/tincan/opus.js';

afterEach(closeAll);

const OFFER = [
  'v=0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:63 red/48000/2',
  'a=fmtp:63 111/111',
  'a=rtpmap:9 G722/8000',
  '',
].join('\r\n');

test('Opus SDP tuning: FEC kept, DTX and a cap added or removed, other codecs untouched', () => {
  const tuned = tuneOpusSdp(OFFER, { dtx: true, maxBitrateKbps: 32 });
  assert.match(tuned, /^a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1;maxaveragebitrate=32000\r$/m);
  assert.match(tuned, /^a=fmtp:63 111\/111\r$/m);
  assert.deepEqual(opusParams(tuned), { red: false, fec: true, dtx: true, maxBitrateKbps: 32 });
  const back = tuneOpusSdp(tuned, {});
  assert.deepEqual(opusParams(back), { red: false, fec: true, dtx: false, maxBitrateKbps: null });
  assert.equal(opusParams(OFFER.replace('SAVPF 111 63 9', 'SAVPF 63 111 9'))?.red, true);
  assert.equal(back, OFFER);
  // An Opus line without fmtp gets one.
  const bare = OFFER.replace('a=fmtp:111 minptime=10;useinbandfec=1\r\n', '');
  assert.match(tuneOpusSdp(bare, { dtx: true }), /a=rtpmap:111 opus\/48000\/2\r\na=fmtp:111 useinbandfec=1;usedtx=1\r\n/);
  assert.equal(tuneOpusSdp('v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n', { dtx: true }).includes('usedtx'), false);
});

test('negotiated SDP carries useinbandfec=1, and usedtx=1 on the side that turned DTX on', { timeout: 120_000 }, async () => {
  const room = unique('opus-');
  const people = [];
  for (const [name, query] of [['Ada', '?dtx=1&maxbitrate=32'], ['Bob', '']]) {
    const username = unique(name.toLowerCase());
    const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
    const browser = await launch();
    await registerUser(browser.baseUrl, username, password, name);
    await signIn(browser, username, password, query);
    people.push({ ...browser, name });
  }
  const [ada, bob] = people;
  await joinRoom(ada, room);
  await joinRoom(bob, room);
  await expectAudioFrom(ada.page, ['Bob']);
  await expectAudioFrom(bob.page, ['Ada']);

  const sides = async (/** @type {import('playwright-core').Page} */ page) =>
    page.evaluate(async () => {
      const link = [.../** @type {any} */ (globalThis).tincanApp.client.peers.values()][0];
      await link.stats();
      const red = (RTCRtpReceiver.getCapabilities('audio')?.codecs ?? []).some((c) => c.mimeType === 'audio/red');
      return { remote: link.pc.remoteDescription.sdp, negotiated: link.negotiated(), redOffered: red, sent: link.lastStats.packetsSent };
    });
  const atAda = await sides(ada.page);
  const atBob = await sides(bob.page);
  const fmtp = (/** @type {string} */ sdp) => {
    const pt = /^a=rtpmap:(\d+) opus\/48000/m.exec(sdp)?.[1];
    return new RegExp(`^a=fmtp:${pt} (.*)$`, 'm').exec(sdp)?.[1] ?? '';
  };
  // What each side's encoder follows: the remote description it applied.
  assert.match(fmtp(atAda.remote), /useinbandfec=1/);
  assert.match(fmtp(atAda.remote), /usedtx=1/);
  assert.match(fmtp(atAda.remote), /maxaveragebitrate=32000/);
  assert.match(fmtp(atBob.remote), /useinbandfec=1/);
  assert.doesNotMatch(fmtp(atBob.remote), /usedtx/);
  const red = atAda.redOffered;
  assert.deepEqual(atAda.negotiated, { red, fec: true, dtx: true, maxBitrateKbps: 32 });
  assert.deepEqual(atBob.negotiated, { red, fec: true, dtx: false, maxBitrateKbps: null });
  report('RED offered by this Chromium', String(atAda.redOffered), '');

  // The connection panel says what was negotiated.
  await ada.page.locator('#participants .participant:not(.self) details summary').click();
  await waitFor(async () => /FEC on, DTX on, ≤ 32 kbit\/s/.test((await ada.page.locator('.s-codec').first().textContent()) ?? ''), {
    what: 'codec in the connection panel',
  });
  const shown = await ada.page.locator('.s-codec').first().textContent();
  if (atAda.redOffered) assert.match(shown ?? '', /Opus \+ RED/);

  // DTX sends less in the fake microphone's pauses: packets sent over 3 s.
  const before = [atAda.sent, atBob.sent];
  await new Promise((r) => setTimeout(r, 3000));
  const after = [(await sides(ada.page)).sent, (await sides(bob.page)).sent];
  report('packets sent in 3 s with DTX (Ada)', after[0] - before[0], '');
  report('packets sent in 3 s without DTX (Bob)', after[1] - before[1], '');
});
