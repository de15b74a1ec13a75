// One cell of the audio-quality bench (tests/bench/audio-quality.sh): a
// speaker whose microphone is a speech WAV (Chromium's fake capture) and a
// listener, in the project's own page, both forced through TURN
// (`?relay=1`). The listener's TURN leg (the speaker's with
// RELAY_ROLE=speaker) goes through the impairment relay
// (tests/impair/relay.py): an init script points the iceServers its
// RTCPeerConnections get at the relay (UDP only), so on the SFU path its
// connection to the SFU, and in the mesh its link to the other, cross it.
//
// With JANUS_URL set (the `janus` path) the two pages are not the project's
// app but a blank page on Janus's HTTP origin running a small VideoRoom
// client (janus.mjs): the speaker publishes, the listener subscribes, both
// through TURN only with credentials from the Tincan stack at URL (its
// embedded TURN server), the listener's rewritten to the relay as above.
//
// Both pages record PCM in Web Audio (a ScriptProcessor, 48 kHz mono, no
// re-encoding): the speaker its microphone track, the listener the sum of
// every remote track, each with the wall-clock time of its first sample.
// The listener's inbound-rtp audio counters are read before and after.
// Writes OUT/NAME.speaker.s16, OUT/NAME.listener.s16 and OUT/NAME.json.
//
// Env: URL (the stack), RELAY (host:port of the relay), RELAY_ROLE
// (`listener`, the default, or `speaker`), SPEECH_WAV,
// SILENCE_WAV, OUT, NAME, RECORD_SECS, JANUS_URL (the Janus path: its
// HTTP API, e.g. http://127.0.0.1:8088/janus).

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { launch, registerUser, signIn, joinRoom, unique, waitFor, closeAll, fetchFresh } from '../../browser/helpers.js';
import { janusCall } from './janus.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const URL = env('URL');
const RELAY = env('RELAY');
const OUT = env('OUT');
const NAME = env('NAME');
const RECORD_SECS = Number(process.env.RECORD_SECS ?? '24');
const JANUS_URL = process.env.JANUS_URL ?? '';
/** Whose TURN leg crosses the relay: `listener` (default) or `speaker`. */
const RELAY_ROLE = process.env.RELAY_ROLE ?? 'listener';
const relayFor = (/** @type {string} */ role) => (role === RELAY_ROLE ? RELAY : '');

/**
 * Init script: PCM capture (the speaker's microphone, the listener's
 * received tracks), and the relay in the iceServers of the role that
 * RELAY_ROLE names (the listener unless told otherwise; `relay` is empty
 * for the other).
 */
function initScript(role, relay) {
  const body = (/** @type {string} */ role, /** @type {string} */ relay) => {
    const cap = { ctx: null, sum: null, chunks: [], on: false, t0: 0, taps: 0 };
    /** @type {any} */ (globalThis).__cap = cap;
    const ensure = () => {
      if (cap.ctx) return;
      const ctx = new AudioContext({ sampleRate: 48000 });
      const sum = ctx.createGain();
      const proc = ctx.createScriptProcessor(4096, 1, 1);
      sum.connect(proc);
      proc.connect(ctx.destination);
      proc.onaudioprocess = (e) => {
        if (!cap.on) return;
        const data = e.inputBuffer.getChannelData(0);
        if (cap.chunks.length === 0) cap.t0 = performance.timeOrigin + performance.now() - (data.length / ctx.sampleRate) * 1000;
        cap.chunks.push(new Float32Array(data));
      };
      ctx.resume().catch(() => {});
      Object.assign(cap, { ctx, sum, proc });
    };
    const tap = (/** @type {MediaStream} */ stream) => {
      ensure();
      cap.ctx.createMediaStreamSource(stream).connect(cap.sum);
      cap.taps += 1;
    };
    if (role === 'speaker') {
      const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = async (c) => {
        const stream = await original(c);
        if (c?.audio) tap(stream);
        return stream;
      };
    }
    const Original = RTCPeerConnection;
    const fix = (/** @type {any} */ cfg) =>
      relay && cfg?.iceServers
        ? { ...cfg, iceServers: cfg.iceServers.filter((s) => s.username).map((s) => ({ ...s, urls: [`turn:${relay}?transport=udp`] })) }
        : cfg;
    class Impaired extends Original {
      constructor(/** @type {any} */ cfg, /** @type {any[]} */ ...rest) {
        // @ts-ignore
        super(fix(cfg), ...rest);
        if (role !== 'speaker') this.addEventListener('track', (e) => tap(new MediaStream([e.track])));
      }
      setConfiguration(/** @type {any} */ cfg) {
        return super.setConfiguration(fix(cfg));
      }
    }
    // @ts-ignore
    globalThis.RTCPeerConnection = Impaired;
    cap.start = () => {
      cap.chunks = [];
      cap.on = true;
    };
    cap.stop = () => {
      cap.on = false;
      const n = cap.chunks.reduce((a, c) => a + c.length, 0);
      const pcm = new Int16Array(n);
      let i = 0;
      for (const c of cap.chunks) for (const x of c) pcm[i++] = Math.max(-1, Math.min(1, x)) * 32767;
      const bytes = new Uint8Array(pcm.buffer);
      let s = '';
      for (let j = 0; j < bytes.length; j += 0x8000) s += String.fromCharCode(...bytes.subarray(j, j + 0x8000));
      return { t0: cap.t0, rate: cap.ctx?.sampleRate ?? 0, taps: cap.taps, b64: btoa(s) };
    };
  };
  return `(${body.toString()})(${JSON.stringify(role)}, ${JSON.stringify(relay)});`;
}

/** The listener's inbound audio counters, summed over its connections. */
function inbound(page) {
  return page.evaluate(async () => {
    const g = /** @type {any} */ (globalThis);
    const client = g.tincanApp?.client ?? { peers: new Map(), sfu: null, mode: 'janus' };
    const pcs = g.__pcs ?? [...client.peers.values()].map((l) => l.pc);
    if (client.sfu) pcs.push(client.sfu.pc);
    const keys = ['packetsReceived', 'packetsLost', 'concealedSamples', 'totalSamplesReceived', 'insertedSamplesForDeceleration',
      'removedSamplesForAcceleration', 'jitterBufferDelay', 'jitterBufferEmittedCount', 'totalAudioEnergy', 'fecPacketsReceived'];
    /** @type {Record<string, number>} */
    const sum = Object.fromEntries(keys.map((k) => [k, 0]));
    let codec = '';
    for (const pc of pcs) {
      const report = await pc.getStats();
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          for (const k of keys) sum[k] += s[k] ?? 0;
          if ((s.packetsReceived ?? 0) > 0 && s.codecId) codec = report.get(s.codecId)?.mimeType ?? codec;
        }
      });
    }
    return { ...sum, codec, mode: client.mode };
  });
}

async function user(role, name, wav) {
  const browser = await launch({ baseUrl: URL, args: [`--use-file-for-fake-audio-capture=${wav}`] });
  await browser.context.addInitScript(initScript(role, relayFor(role)));
  const username = unique(name.toLowerCase());
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  await registerUser(URL, username, password, name);
  await signIn(browser, username, password, '?relay=1');
  return browser;
}

/** TURN credentials from the Tincan stack's HTTP API, for the Janus pages. */
async function turnServers() {
  const username = unique('aqj');
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  await registerUser(URL, username, password, 'Janus bench');
  const json = { 'content-type': 'application/json' };
  const login = await (await fetchFresh(`${URL}/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ username, password }) })).json();
  const res = await fetchFresh(`${URL}/turn-credentials`, { headers: { authorization: `Bearer ${login.accessToken}` } });
  if (!res.ok) throw new Error(`turn-credentials: ${res.status} ${await res.text()}`);
  return (await res.json()).iceServers;
}

/** A page on Janus's origin (same-origin requests to its API), nothing in it. */
async function janusPage(role, wav) {
  const browser = await launch({ baseUrl: JANUS_URL, args: [`--use-file-for-fake-audio-capture=${wav}`] });
  await browser.context.addInitScript(initScript(role, relayFor(role)));
  const blank = `${new globalThis.URL(JANUS_URL).origin}/aq-bench.html`;
  await browser.context.route(blank, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>aq</title>' }));
  await browser.page.goto(blank);
  return browser;
}

/** The two pages in one call: through Tincan, or through Janus VideoRoom. */
async function call() {
  if (JANUS_URL) {
    const iceServers = await turnServers();
    const speaker = await janusPage('speaker', env('SPEECH_WAV'));
    const listener = await janusPage('listener', env('SILENCE_WAV'));
    const room = 1 + crypto.randomInt(1 << 30);
    const pub = await speaker.page.evaluate(janusCall, { base: JANUS_URL, role: 'speaker', room, iceServers });
    const sub = await listener.page.evaluate(janusCall, { base: JANUS_URL, role: 'listener', room, feed: pub.id, iceServers });
    console.log(`janus: publisher answer ${pub.codecs}; subscriber offer ${sub.codecs}`);
    return { speaker, listener };
  }
  const room = unique('aq');
  const speaker = await user('speaker', 'Spk', env('SPEECH_WAV'));
  const listener = await user('listener', 'Lis', env('SILENCE_WAV'));
  await joinRoom(speaker, room);
  await joinRoom(listener, room);
  return { speaker, listener };
}

try {
  const { speaker, listener } = await call();
  // Audio flowing and the listener's capture tapped.
  await waitFor(
    async () => {
      const s = await inbound(listener.page);
      const taps = await listener.page.evaluate(() => /** @type {any} */ (globalThis).__cap.taps);
      return s.packetsReceived > 100 && s.totalAudioEnergy > 0 && taps > 0;
    },
    { timeoutMs: 60_000, what: 'audio at the listener', describe: async () => JSON.stringify(await inbound(listener.page)) },
  );
  const before = await inbound(listener.page);
  await Promise.all([speaker, listener].map((b) => b.page.evaluate(() => /** @type {any} */ (globalThis).__cap.start())));
  await new Promise((r) => setTimeout(r, RECORD_SECS * 1000));
  const [spk, lis] = await Promise.all([speaker, listener].map((b) => b.page.evaluate(() => /** @type {any} */ (globalThis).__cap.stop())));
  const after = await inbound(listener.page);
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, `${NAME}.speaker.s16`), Buffer.from(spk.b64, 'base64'));
  fs.writeFileSync(path.join(OUT, `${NAME}.listener.s16`), Buffer.from(lis.b64, 'base64'));
  /** @type {Record<string, number>} */
  const delta = {};
  for (const k of Object.keys(after)) if (typeof after[k] === 'number') delta[k] = after[k] - before[k];
  const meta = { speaker: { t0: spk.t0, rate: spk.rate }, listener: { t0: lis.t0, rate: lis.rate, taps: lis.taps }, stats: delta, codec: after.codec, mode: after.mode };
  fs.writeFileSync(path.join(OUT, `${NAME}.json`), JSON.stringify(meta, null, 1));
  // The speaker's RED redundancy on its mesh links (red-boost.js), if any.
  const redLevels = await speaker.page.evaluate(() =>
    [.../** @type {any} */ (globalThis).tincanApp?.client?.peers?.values() ?? []].map((l) => l.redBoost?.level ?? null),
  );
  console.log(`recorded ${NAME}: mode ${after.mode}, ${delta.packetsReceived} packets, codec ${after.codec}, speaker RED levels ${JSON.stringify(redLevels)}`);
} finally {
  await closeAll();
}
