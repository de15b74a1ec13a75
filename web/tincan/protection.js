// Loss protection that follows the link: when the loss on what we send
// rises, the client protects its audio more; when the link recovers, it
// steps back down. Per link (each mesh peer, the SFU link), from the
// browser's own numbers, within what Chromium honours (checked in
// tests/browser/protection.test.js by reading the applied SDP, the sender's
// parameters and the outbound packet rate):
//
//   level 0  clean    Opus as the `opus` options say (RED per `red`; with
//                     `red: 'auto'` plain Opus), 20 ms packets
//   level 1  red      RED on (with `red: 'auto'`; it already is with the
//                     default `red: true`)
//   level 2  robust   only on a congested link (loss that comes with a
//                     queue: the round trip 150 ms above the lowest seen,
//                     or over 500 ms): RED, 60 ms packets (a third of the
//                     packets, so a third of the per-packet overhead, about
//                     17 kbit/s less on the wire), and the Opus target
//                     capped at 16 kbit/s, so the link can drain. Random
//                     loss on a link with room to spare stays at level 1
//                     (more redundancy is red-boost.js's job there: a cap
//                     would only cost quality)
//
// How each is applied: what our encoder does is decided by the remote
// description we apply (RFC 7587: a receiver's parameters), so the client
// writes it there and renegotiates: RED first or Opus first in the m-line,
// `ptime` in the Opus `a=fmtp` line (Chromium 156 ignores `ptime` and
// `adaptivePtime` in `RTCRtpSender.setParameters`, takes an encoding's
// `codec` for audio without acting on it, and its RED sends one redundant
// frame whatever the RED `a=fmtp` line says). The cap is
// `setParameters({encodings: [{maxBitrate}]})`, which Chromium honours
// (the outbound `targetBitrate` follows). The SFU link is negotiated once
// with the node: RED is offered first there from the start (unless
// `red: false`), so it is already on, and the packet time changes by a
// local renegotiation that applies the node's own answer again with
// `ptime` in it (sfu.js), which the node never sees.
//
// Not set here: Opus in-band FEC. With `useinbandfec=1` (the default)
// Chromium's encoder sizes its FEC from the loss the receiver reports in
// RTCP by itself; the browser has no API to set it.
//
// What is measured: the loss on what we send, from the receiver reports
// (`remote-inbound-rtp` `fractionLost`, one sample per new report: about
// every 5-7 s between two Chromiums, every second from the SFU), averaged
// over about the last SMOOTH_PACKETS packets (each report weighs as many
// packets as we sent since the one before, so a short report moves it
// little and sampling noise rarely reaches a threshold). A level is raised as
// soon as that average reaches its RAISE_PCT, and lowered one step only
// when the average is under that level's LOWER_PCT and the level has held
// for HOLD_MS: raised fast, lowered slowly, and the gap between the two
// thresholds keeps a steady loss from flapping between levels (checked on
// a virtual clock over seeded noisy loss in tests/browser/protection.test.js).
// The loss and concealment of what we receive are measured too
// (`inbound-rtp` deltas) and shown, but they are the sender's to protect.

/** @typedef {0 | 1 | 2} ProtectionLevel */

/**
 * What a level does to what we send.
 * @typedef {{red: boolean | null, ptimeMs: number | null, maxBitrateKbps: number | null}} ProtectionSettings
 *   `red`: RED first (true), Opus first (false) or as negotiated (null);
 *   `ptimeMs`: packet time asked of our encoder (null: the default, 20 ms);
 *   `maxBitrateKbps`: the sender's `maxBitrate` (null: none)
 */

/**
 * A link's protection, as `protection-changed` and `client.protection()` tell it;
 * `redundancy`: the earlier frames each RED packet we send carries (red-boost.js;
 * null where the browser cannot add any); `maxBitrateKbps`: what the encoder
 * is held to or, while RED carries two or more, raised to; `jitterTargetMs`:
 * the jitter buffer asked of our receivers on a lossy link (null: the browser's own).
 * @typedef {{level: ProtectionLevel, sendLossPct: number | null, recvLossPct: number | null,
 *   concealedPct: number | null, redundancy: number | null, jitterTargetMs: number | null} & ProtectionSettings} Protection
 */

export const PROTECTION_NAMES = Object.freeze(/** @type {const} */ (['clean', 'red', 'robust']));
/** Averaged send loss (%) at which each level is reached. */
export const RAISE_PCT = Object.freeze({ 1: 2, 2: 10 });
/** Averaged send loss (%) under which each level may step down. */
export const LOWER_PCT = Object.freeze({ 1: 0.5, 2: 3 });
/** A level holds at least this long before it steps down. */
export const HOLD_MS = 10_000;
/** The loss is averaged over about this many packets (5 s of 20 ms packets). */
export const SMOOTH_PACKETS = 250;
/** Packets per second assumed when a report's packet count is unknown. */
const DEFAULT_PPS = 50;
/** Level 2's packet time and Opus target cap. */
export const ROBUST_PTIME_MS = 60;
export const ROBUST_MAX_BITRATE_KBPS = 16;
/**
 * Smoothed received loss (%) at which a link's receivers are asked for a
 * deeper jitter buffer (`on`), and under which they are let go (`off`).
 */
export const DEEP_BUFFER_LOSS_PCT = Object.freeze({ on: 5, off: 2 });
/**
 * The jitter buffer target (ms) on a lossy link: the SFU sends up to five
 * earlier frames in each RED packet there, and a frame recovered from the
 * fifth packet after it (100 ms later) only helps if it is not due yet.
 * Under 10 % loss in bursts of mean 3 through the SFU, this took
 * concealment from 2.5 % to 1.5 % and PESQ-WB from 2.7 to 3.1, for about
 * 25 ms more mouth-to-ear delay.
 */
export const DEEP_BUFFER_MS = 120;
/** A round trip this much above the lowest seen means a queue (congestion)... */
export const QUEUE_MS = 150;
/** ...and so does one this long, whatever was seen before. */
export const QUEUED_RTT_MS = 500;

/**
 * Whether a link's round trips show a queue: each one against the lowest
 * seen (QUEUE_MS above it) and against QUEUED_RTT_MS. Shared by the
 * protection tracker and red-boost.js.
 */
export class QueueWatch {
  /** @type {number | null} the lowest round trip seen, ms */ minRttMs = null;

  /**
   * Takes one round trip (ms); whether it shows a queue, or null when it
   * is no usable measurement.
   * @param {number | null | undefined} rttMs
   * @returns {boolean | null}
   */
  observe(rttMs) {
    if (typeof rttMs !== 'number' || !Number.isFinite(rttMs) || rttMs <= 0) return null;
    this.minRttMs = this.minRttMs === null ? rttMs : Math.min(this.minRttMs, rttMs);
    return rttMs > this.minRttMs + QUEUE_MS || rttMs > QUEUED_RTT_MS;
  }
}

/**
 * What a level does, given the client's `opus` options.
 * @param {ProtectionLevel} level
 * @param {import('./opus.js').OpusOptions} [opus]
 * @returns {ProtectionSettings}
 */
export function protectionSettings(level, opus = {}) {
  const red = opus.red ?? true;
  const cap = opus.maxBitrateKbps ?? null;
  return {
    // `true` (default) and `false` are the app's choice; `'auto'` follows the level.
    red: red === 'auto' ? level >= 1 : null,
    ptimeMs: level >= 2 ? ROBUST_PTIME_MS : null,
    maxBitrateKbps: level >= 2 ? Math.min(cap ?? Infinity, ROBUST_MAX_BITRATE_KBPS) : null,
  };
}

/**
 * One step of the average (which starts from a clean link): `sample`
 * weighs as much as the `packets` it was measured on.
 * @param {number | null} previous
 * @param {number} sample
 * @param {number} packets
 */
function smooth(previous, sample, packets) {
  if (previous === null) previous = 0;
  return previous + (1 - Math.exp(-Math.max(0, packets) / SMOOTH_PACKETS)) * (sample - previous);
}

/**
 * The level of one link, from its loss samples. IO-free: the caller passes
 * `now` (ms) with each sample.
 */
export class ProtectionTracker {
  constructor() {
    /** @type {ProtectionLevel} */ this.level = 0;
    /** @type {number | null} smoothed loss on what we send, % */ this.sendLossPct = null;
    /** @type {number | null} smoothed loss on what we receive, % */ this.recvLossPct = null;
    /** @type {number | null} smoothed share of received audio concealed, % */ this.concealedPct = null;
    this.changedAt = -Infinity;
    /** @type {number | null} */ this.sendAt = null;
    /** @type {number | null} */ this.recvAt = null;
    this.queue = new QueueWatch();
    /** Whether the last report's round trip showed a queue. */
    this.congested = false;
    /** Whether what we receive is lossy enough for a deeper jitter buffer. */
    this.deepBuffer = false;
  }

  /** The jitter buffer target (ms) to ask of this link's receivers; null: the browser's own. */
  get jitterTargetMs() {
    return this.deepBuffer ? DEEP_BUFFER_MS : null;
  }

  /**
   * One new receiver report about what we send. Returns the new level if it changed, else null.
   * @param {number} lossPct  the report's fraction lost, in %
   * @param {number} now
   * @param {number | null} [packets]  packets sent since the previous report
   *   (unknown: DEFAULT_PPS over the time since it)
   * @param {number | null} [rttMs]  the round trip measured with the report
   *   (unknown: the previous verdict on congestion stands)
   * @returns {ProtectionLevel | null}
   */
  sendReport(lossPct, now, packets = null, rttMs = null) {
    const n = packets ?? ((now - (this.sendAt ?? now)) * DEFAULT_PPS) / 1000;
    this.sendLossPct = smooth(this.sendLossPct, lossPct, n);
    this.sendAt = now;
    const queued = this.queue.observe(rttMs);
    if (queued !== null) this.congested = queued;
    const loss = this.sendLossPct;
    const level = this.level;
    const held = now - this.changedAt >= HOLD_MS;
    /** @type {ProtectionLevel} */
    let next = level;
    if (loss >= RAISE_PCT[2] && this.congested) next = 2;
    else if (loss >= RAISE_PCT[1] && level === 0) next = 1;
    else if (level === 2 && held && (!this.congested || loss < LOWER_PCT[2])) next = 1;
    else if (level === 1 && held && loss < LOWER_PCT[1]) next = 0;
    if (next === this.level) return null;
    this.level = next;
    this.changedAt = now;
    return next;
  }

  /**
   * What we receive over the last interval: shown, and on a lossy link
   * (`DEEP_BUFFER_LOSS_PCT`) a deeper jitter buffer is asked for. Returns
   * whether that changed (`jitterTargetMs`).
   * @param {number | null} lossPct
   * @param {number | null} concealedPct
   * @param {number} now
   * @returns {boolean}
   */
  receive(lossPct, concealedPct, now) {
    const n = ((now - (this.recvAt ?? now)) * DEFAULT_PPS) / 1000;
    if (lossPct !== null) this.recvLossPct = smooth(this.recvLossPct, lossPct, n);
    if (concealedPct !== null) this.concealedPct = smooth(this.concealedPct, concealedPct, n);
    this.recvAt = now;
    const deep = this.deepBuffer;
    if (this.recvLossPct !== null) {
      if (!deep && this.recvLossPct >= DEEP_BUFFER_LOSS_PCT.on) this.deepBuffer = true;
      else if (deep && this.recvLossPct < DEEP_BUFFER_LOSS_PCT.off) this.deepBuffer = false;
    }
    return this.deepBuffer !== deep;
  }
}

/**
 * @typedef {{reportAt: number | null, reportLost: number | null, reportSent: number | null, concealed: number,
 *   samples: number}} LossCursor
 *   what the previous look at a report saw
 */

/** @returns {LossCursor} */
export function newLossCursor() {
  return { reportAt: null, reportLost: null, reportSent: null, concealed: 0, samples: 0 };
}

/**
 * From one `getStats()` report: the loss the far end reported on what we
 * send, if a new receiver report came since `cursor` (else null), with the
 * packets we sent since the report before (since the start, for the first); and the
 * share of received audio concealed since the last look.
 * @param {RTCStatsReport} report
 * @param {LossCursor} cursor  updated in place
 * The round trip comes with it: the report's own (`roundTripTime`), else
 * the ICE pair's.
 * @returns {{sendLossPct: number | null, sentPackets: number | null, concealedPct: number | null, rttMs: number | null}}
 */
export function lossSince(report, cursor) {
  /** @type {any} */ let remote = null;
  let concealed = 0;
  let samples = 0;
  let sent = 0;
  let inbound = false;
  /** @type {number | null} */
  let pairRttMs = null;
  report.forEach((/** @type {any} */ s) => {
    if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') pairRttMs = 1000 * s.currentRoundTripTime;
    if (s.kind !== 'audio') return;
    if (s.type === 'outbound-rtp') sent += s.packetsSent ?? 0;
    if (s.type === 'remote-inbound-rtp' && (remote === null || (s.packetsLost ?? 0) > (remote.packetsLost ?? 0))) remote = s;
    if (s.type === 'inbound-rtp') {
      inbound = true;
      concealed += s.concealedSamples ?? 0;
      samples += s.totalSamplesReceived ?? 0;
    }
  });
  let sendLossPct = null;
  let sentPackets = null;
  if (remote && typeof remote.timestamp === 'number' && remote.timestamp !== cursor.reportAt) {
    const lost = remote.packetsLost ?? 0;
    // A report with no loss field says nothing; `fractionLost` is the loss
    // since the previous report (RFC 3550), as a share.
    if (typeof remote.fractionLost === 'number') sendLossPct = 100 * remote.fractionLost;
    else if (cursor.reportLost !== null) sendLossPct = lost > cursor.reportLost ? null : 0;
    sentPackets = Math.max(0, sent - (cursor.reportSent ?? 0));
    cursor.reportAt = remote.timestamp;
    cursor.reportLost = lost;
    cursor.reportSent = sent;
  }
  let concealedPct = null;
  if (inbound) {
    const dSamples = samples - cursor.samples;
    if (dSamples > 0) concealedPct = (100 * Math.max(0, concealed - cursor.concealed)) / dSamples;
    cursor.concealed = concealed;
    cursor.samples = samples;
  }
  const rttMs = typeof remote?.roundTripTime === 'number' && remote.roundTripTime > 0 ? 1000 * remote.roundTripTime : pairRttMs;
  return { sendLossPct, sentPackets, concealedPct, rttMs };
}

/**
 * Asks every audio receiver of `pc` to hold `ms` in its jitter buffer
 * (`RTCRtpReceiver.jitterBufferTarget`; null: the browser decides). Where
 * the browser has no such control, nothing happens.
 * @param {RTCPeerConnection} pc
 * @param {number | null} ms
 */
export function setJitterTarget(pc, ms) {
  for (const receiver of pc.getReceivers()) {
    if (receiver.track?.kind !== 'audio' || !('jitterBufferTarget' in receiver)) continue;
    /** @type {any} */ (receiver).jitterBufferTarget = ms;
  }
}

/**
 * Sets (or, with null, removes) the `maxBitrate` of a sender's encoding;
 * Chromium honours it for audio (the outbound `targetBitrate` follows).
 * @param {RTCRtpSender | null} sender
 * @param {number | null} kbps
 */
export async function setMaxBitrate(sender, kbps) {
  if (!sender) return;
  const params = sender.getParameters();
  const encoding = params.encodings?.[0];
  if (!encoding) return;
  const want = kbps ? Math.round(kbps * 1000) : undefined;
  if (encoding.maxBitrate === want) return;
  if (want === undefined) delete encoding.maxBitrate;
  else encoding.maxBitrate = want;
  await sender.setParameters(params).catch(() => {});
}
