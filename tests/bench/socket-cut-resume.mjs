// The measuring half of tests/bench/socket-cut-resume.sh (read that first).
// Two Chromium pages in a call on a tincan-local that cuts every socket after
// CUT_SECS; the second page joins CUT_SECS/2 after the first, so the two
// pages' cuts alternate and each cut's effects can be told apart.

import {
  launch,
  registerUser,
  signIn,
  joinRoom,
  expectAudioFrom,
  startStack,
  unique,
  closeAll,
} from '../browser/helpers.js';

const CUTS = Number(process.env.CUTS ?? 5);
const CUT_SECS = Number(process.env.CUT_SECS ?? 10);
const MODES = (process.env.MODES ?? 'control resume rejoin').split(/\s+/).filter(Boolean);
const JITTER = process.env.TINCAN_INVOKE_JITTER_MS ?? '0';
/** Audio is looked at from this long before a cut to this long after it. */
const BEFORE_MS = 500;
const AFTER_MS = Math.min(6000, CUT_SECS * 500 - BEFORE_MS);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** In the page: samples inbound audio every 100 ms and records client events, in epoch ms. */
function instrument() {
  const app = /** @type {any} */ (globalThis).tincanApp;
  const now = () => performance.timeOrigin + performance.now();
  app.bench = { samples: [], events: [] };
  for (const type of ['reconnecting', 'resumed', 'joined', 'resume-failed', 'peer-left']) {
    app.client.addEventListener(type, () => app.bench.events.push({ type, at: now() }));
  }
  /** @type {Map<string, number>} */
  const previous = new Map();
  let busy = false;
  setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      let rose = false;
      for (const link of app.client.peers.values()) {
        let packets = 0;
        (await link.pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') packets = s.packetsReceived ?? 0;
        });
        if (packets > (previous.get(link.localId) ?? 0)) rose = true;
        previous.set(link.localId, packets);
      }
      app.bench.samples.push([now(), rose]);
    } finally {
      busy = false;
    }
  }, 100);
}

/** The longest stretch in [from, to] between samples that saw packets rise. */
function longestGap(samples, from, to) {
  const times = [from, ...samples.filter(([t, rose]) => rose && t > from && t < to).map(([t]) => t), to];
  let gap = 0;
  for (let i = 1; i < times.length; i += 1) gap = Math.max(gap, times[i] - times[i - 1]);
  return gap;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (ms) => (Number.isFinite(ms) ? `${Math.round(ms)}`.padStart(6) : '     -');

async function user(baseUrl, name, query) {
  const b = await launch({ baseUrl });
  const username = unique(name.toLowerCase());
  const password = `pw-${unique('')}`;
  await registerUser(baseUrl, username, password, name);
  await signIn(b, username, password, query);
  return { ...b, name };
}

async function runMode(mode) {
  const stack = await startStack(`bench-${mode}`, {
    // The control run cuts nothing: the noise floor of the measurement.
    ...(mode === 'control' ? {} : { TINCAN_MAX_CONNECTION_SECS: String(CUT_SECS) }),
    TINCAN_INVOKE_JITTER_MS: JITTER,
    // The old server told the room at once; a short grace keeps the ghost of
    // a rejoined participant from lingering.
    ...(mode === 'rejoin' ? { TINCAN_RESUME_GRACE_SECS: '2' } : {}),
  });
  try {
    const query = mode === 'rejoin' ? '?resume=0' : '';
    const a = await user(stack.url, 'Ann', query);
    const b = await user(stack.url, 'Ben', query);
    const room = unique('bench-');
    await joinRoom(a, room);
    for (const p of [a, b]) await p.page.evaluate(instrument);
    await sleep((CUT_SECS * 1000) / 2);
    await joinRoom(b, room);
    await expectAudioFrom(a.page, ['Ben']);
    await expectAudioFrom(b.page, ['Ann']);
    // Ann's first cut may have come before Ben was there: count cuts after both were in.
    const since = Date.now();
    if (mode === 'control') return await control(a, b, since);
    const cutsOf = async (p) =>
      (await p.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.bench.events)).filter(
        (e) => e.type === 'reconnecting' && e.at > since,
      ).length;
    const deadline = Date.now() + (CUTS + 2) * CUT_SECS * 1000 + 30_000;
    while ((await cutsOf(a)) < CUTS || (await cutsOf(b)) < CUTS) {
      if (Date.now() > deadline) throw new Error(`${mode}: fewer than ${CUTS} cuts per page seen`);
      await sleep(500);
    }
    await sleep(AFTER_MS + 500);
    const data = [];
    for (const p of [a, b]) data.push(await p.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.bench));
    const rows = [];
    for (const [i, p] of [a, b].entries()) {
      const mine = data[i];
      const theirs = data[1 - i];
      let n = 0;
      for (const [k, e] of mine.events.entries()) {
        if (e.type !== 'reconnecting' || e.at <= since) continue;
        // Skip a retry of the same drop: only the first `reconnecting` after a recovery counts.
        const prev = mine.events.slice(0, k).reverse().find((x) => x.type !== 'peer-left');
        if (prev && prev.type === 'reconnecting') continue;
        if (n >= CUTS) break;
        n += 1;
        const back = mine.events.slice(k).find((x) => x.type === 'resumed' || x.type === 'joined');
        rows.push({
          page: p.name,
          cut: n,
          back: back ? back.type : 'never',
          toBackMs: back ? back.at - e.at : NaN,
          gapHereMs: longestGap(mine.samples, e.at - BEFORE_MS, e.at + AFTER_MS),
          gapThereMs: longestGap(theirs.samples, e.at - BEFORE_MS, e.at + AFTER_MS),
        });
      }
    }
    return rows;
  } finally {
    await closeAll();
    await stack.stop();
  }
}

/** No cuts: the longest gap in windows as long as a cut's, on both pages. */
async function control(a, b, since) {
  const windowMs = BEFORE_MS + AFTER_MS;
  await sleep(CUTS * windowMs + 500);
  const rows = [];
  const data = [];
  for (const p of [a, b]) data.push(await p.page.evaluate(() => /** @type {any} */ (globalThis).tincanApp.bench));
  for (let n = 0; n < CUTS; n += 1) {
    const from = since + n * windowMs;
    rows.push({
      page: 'both',
      cut: n + 1,
      back: 'no cut',
      toBackMs: NaN,
      gapHereMs: longestGap(data[0].samples, from, from + windowMs),
      gapThereMs: longestGap(data[1].samples, from, from + windowMs),
    });
  }
  return rows;
}

const TITLES = {
  control: 'control: no cuts (the noise floor of 100 ms getStats sampling)',
  resume: 'resume',
  rejoin: 'full rejoin (?resume=0)',
};

console.log(
  `socket-cut-resume: ${CUTS} cuts per page, sockets cut every ${CUT_SECS} s, invocation jitter ${JITTER} ms, ` +
    `audio sampled every 100 ms from ${BEFORE_MS} ms before to ${AFTER_MS} ms after each cut`,
);
const summary = [];
for (const mode of MODES) {
  const rows = await runMode(mode);
  console.log(`\n== ${TITLES[mode] ?? mode}`);
  console.log('page  cut  answer    cut->answer ms  audio gap at cut page ms  audio gap at other page ms');
  for (const r of rows) {
    console.log(
      `${r.page.padEnd(5)} ${String(r.cut).padStart(3)}  ${r.back.padEnd(8)}  ${fmt(r.toBackMs)}          ${fmt(r.gapHereMs)}                    ${fmt(r.gapThereMs)}`,
    );
  }
  const pick = (k) => rows.map((r) => r[k]).filter(Number.isFinite);
  summary.push({
    mode,
    back: [median(pick('toBackMs')), pick('toBackMs').length ? Math.max(...pick('toBackMs')) : NaN],
    gap: [median(pick('gapHereMs').concat(pick('gapThereMs'))), Math.max(...pick('gapHereMs').concat(pick('gapThereMs')))],
    n: rows.length,
  });
}
console.log('\n== summary (median / max over all cuts; audio gap over both pages)');
console.log('mode                         cuts  cut->resumed|joined ms   longest audio gap ms');
for (const s of summary) {
  console.log(
    `${({ control: 'control (no cuts)', rejoin: 'full rejoin, this client' }[s.mode] ?? s.mode).padEnd(28)} ${String(s.n).padStart(4)}  ${fmt(s.back[0])} / ${fmt(s.back[1])}        ${fmt(s.gap[0])} / ${fmt(s.gap[1])}`,
  );
}
console.log(`${'full rejoin, before resume'.padEnd(28)}    -    1100-1400 (old figure)  2400-3000 (old figure, audio back)`);
