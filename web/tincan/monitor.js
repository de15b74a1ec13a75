// Call quality and the active speaker, watched from the browser's own
// numbers while a call runs.
//
// Connection quality, per remote peer, once a second from `getStats()`
// (loss and jitter of the audio we receive from that peer over the last
// second, and the round trip of the selected ICE candidate pair):
//
//   lost       the connection is `disconnected`/`failed`, or no audio packet
//              came from the peer for LOST_AFTER_MS (a peer that is muted
//              still sends packets; DTX still sends one every 400 ms)
//   poor       loss > 5 %, or RTT > 400 ms, or jitter > 50 ms
//   good       loss > 1 %, or RTT > 150 ms, or jitter > 20 ms
//   excellent  anything better
//
// (5 % loss is where Opus with FEC starts to sound broken; 400 ms round trip
// is where people talk over each other, ITU-T G.114; 50 ms jitter is where
// the jitter buffer's added delay becomes noticeable.)
//
// Active speaker, in a mesh: every SPEAKER_TICK_MS, the loudest of the
// remote peers (RFC 6464 levels from `getSynchronizationSources()`) and our
// own microphone (the `media-source` level in the sender's stats; 0 while
// muted) above SPEAKING_LEVEL. A new speaker takes over after being the
// loudest for two ticks in a row; nobody speaking for SILENCE_MS gives `null`.

import { summarizeStats } from './stats.js';
import { ProtectionTracker, lossSince, newLossCursor, setJitterTarget } from './protection.js';

/** @typedef {'excellent' | 'good' | 'poor' | 'lost'} Quality */

export const QUALITY_THRESHOLDS = Object.freeze({
  poor: { lossPct: 5, rttMs: 400, jitterMs: 50 },
  good: { lossPct: 1, rttMs: 150, jitterMs: 20 },
});
export const LOST_AFTER_MS = 2_500;
export const QUALITY_TICK_MS = 1_000;
export const SPEAKER_TICK_MS = 300;
export const SPEAKING_LEVEL = 0.02;
export const SILENCE_MS = 1_500;

/**
 * The quality of one sample (thresholds above).
 * @param {{lossPct: number | null, rttMs: number | null, jitterMs: number | null, connected: boolean, msSinceLastPacket: number}} s
 * @returns {Quality}
 */
export function classifyQuality(s) {
  if (!s.connected || s.msSinceLastPacket >= LOST_AFTER_MS) return 'lost';
  const over = (/** @type {{lossPct: number, rttMs: number, jitterMs: number}} */ t) =>
    (s.lossPct ?? 0) > t.lossPct || (s.rttMs ?? 0) > t.rttMs || (s.jitterMs ?? 0) > t.jitterMs;
  if (over(QUALITY_THRESHOLDS.poor)) return 'poor';
  if (over(QUALITY_THRESHOLDS.good)) return 'good';
  return 'excellent';
}

/**
 * @typedef {{
 *   peers: Map<string, import('./peer.js').PeerLink>,
 *   selfId: () => string | null,
 *   muted: () => boolean,
 *   emit: (type: string, detail: object) => void,
 *   tick?: () => void,
 *   sfuLevels?: () => Array<[string, number]>,
 *   sfuSender?: () => RTCRtpSender | null,
 *   sfuLink?: () => import('./sfu.js').SfuLink | null,
 *   sample?: (peerId: string, stats: import('./stats.js').PeerStats) => void,
 *   protect?: (peerId: string | null, level: import('./protection.js').ProtectionLevel) => Promise<void>,
 * }} MonitorHost
 *   In SFU mode, `sfuLevels` gives each participant the level of the slot
 *   that carries them, `sfuSender` the microphone's sender, and `sfuLink`
 *   the connection whose quality is told with `peerId: null`. `sample`
 *   gets each mesh link's summary, once a second. `protect` applies a
 *   link's new loss-protection level (protection.js).
 */

/**
 * @typedef {{link: {pc: RTCPeerConnection, protection: import('./protection.js').ProtectionSettings, redBoost?: {level: number} | null}, prev: import('./stats.js').PeerStats | null,
 *   lastPacketAt: number, received: number, tracker: ProtectionTracker, cursor: import('./protection.js').LossCursor}} LinkEntry
 *   `link.protection`: what the link applies now
 */

/** @returns {Pick<LinkEntry, 'tracker' | 'cursor'>} */
const newProtection = () => ({ tracker: new ProtectionTracker(), cursor: newLossCursor() });

/** Runs both watches for a client; `start()` on join, `stop()` on leave. */
export class CallMonitor {
  /** @param {MonitorHost} host */
  constructor(host) {
    this.host = host;
    /** @type {Map<string, Quality>} the last quality told, per peer */
    this.quality = new Map();
    /** @type {Map<string, LinkEntry>} */
    this.samples = new Map();
    /** @type {string | null} */
    this.activeSpeaker = null;
    /** @type {string | null} */ this.candidate = null;
    this.candidateTicks = 0;
    this.lastVoiceAt = 0;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.qualityTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.speakerTimer = undefined;
    this.busy = false;
    /** @type {(LinkEntry & {link: import('./sfu.js').SfuLink, quality: Quality | null}) | null} */
    this.sfuEntry = null;
  }

  start() {
    if (this.qualityTimer !== undefined) return;
    this.qualityTimer = setInterval(() => void this.#qualityTick(), QUALITY_TICK_MS);
    this.speakerTimer = setInterval(() => void this.#speakerTick(), SPEAKER_TICK_MS);
  }

  stop() {
    clearInterval(this.qualityTimer);
    clearInterval(this.speakerTimer);
    this.qualityTimer = undefined;
    this.speakerTimer = undefined;
    this.quality.clear();
    this.samples.clear();
    this.activeSpeaker = null;
    this.candidate = null;
  }

  /** @param {string} peerId */
  forget(peerId) {
    this.quality.delete(peerId);
    this.samples.delete(peerId);
  }

  async #qualityTick() {
    this.host.tick?.();
    if (this.busy) return;
    this.busy = true;
    try {
      for (const [peerId, link] of this.host.peers) {
        if (link.closed) continue;
        const now = performance.now();
        let entry = this.samples.get(peerId);
        // A rebuilt link starts again (its protection is back at level 0).
        if (!entry || entry.link !== link) {
          entry = { link, prev: null, lastPacketAt: now, received: 0, ...newProtection() };
          this.samples.set(peerId, entry);
        }
        const report = await link.pc.getStats().catch(() => null);
        if (!report || link.closed) continue;
        const s = await summarizeStats(report, entry.prev);
        entry.prev = s;
        await this.#protect(peerId, entry, report, s, now);
        this.host.sample?.(peerId, s);
        if (s.packetsReceived > entry.received) {
          entry.received = s.packetsReceived;
          entry.lastPacketAt = now;
        }
        const state = link.pc.connectionState;
        // No verdict before the first connection: "connecting" is not "lost".
        if (!this.quality.has(peerId) && (state !== 'connected' || entry.received === 0)) continue;
        const quality = classifyQuality({
          lossPct: s.lossPct,
          rttMs: s.rttMs,
          jitterMs: s.jitterMs,
          connected: state === 'connected',
          msSinceLastPacket: now - entry.lastPacketAt,
        });
        if (this.quality.get(peerId) === quality) continue;
        this.quality.set(peerId, quality);
        this.host.emit('connection-quality', {
          peerId,
          quality,
          rttMs: s.rttMs,
          lossPct: s.lossPct,
          jitterMs: s.jitterMs,
          protection: entry.tracker.level,
          sendLossPct: entry.tracker.sendLossPct,
        });
      }
      await this.#sfuQualityTick();
    } finally {
      this.busy = false;
    }
  }

  /**
   * The SFU link's quality, like a peer's, but with the packets of every
   * slot counted: a slot nobody is in sends nothing.
   */
  async #sfuQualityTick() {
    const link = this.host.sfuLink?.();
    if (!link || link.closed) {
      this.sfuEntry = null;
      return;
    }
    const now = performance.now();
    if (this.sfuEntry?.link !== link) {
      this.sfuEntry = { link, prev: null, lastPacketAt: now, received: 0, quality: null, ...newProtection() };
    }
    const entry = this.sfuEntry;
    const report = await link.pc.getStats().catch(() => null);
    if (!report || link.closed) return;
    const s = await summarizeStats(report, entry.prev);
    entry.prev = s;
    await this.#protect(null, entry, report, s, now);
    let received = 0;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') received += r.packetsReceived ?? 0;
    });
    if (received > entry.received) {
      entry.received = received;
      entry.lastPacketAt = now;
    }
    const state = link.pc.connectionState;
    if (entry.quality === null && (state !== 'connected' || entry.received === 0)) return;
    const quality = classifyQuality({
      lossPct: s.lossPct,
      rttMs: s.rttMs,
      jitterMs: s.jitterMs,
      connected: state === 'connected',
      msSinceLastPacket: now - entry.lastPacketAt,
    });
    if (entry.quality === quality) return;
    entry.quality = quality;
    this.host.emit('connection-quality', {
      peerId: null,
      quality,
      rttMs: s.rttMs,
      lossPct: s.lossPct,
      jitterMs: s.jitterMs,
      protection: entry.tracker.level,
      sendLossPct: entry.tracker.sendLossPct,
    });
  }

  /**
   * Feeds one link's loss to its protection tracker; on a new level, has
   * the host apply it and tells `protection-changed`.
   * @param {string | null} peerId
   * @param {LinkEntry} entry
   * @param {RTCStatsReport} report
   * @param {import('./stats.js').PeerStats} s
   * @param {number} now
   */
  async #protect(peerId, entry, report, s, now) {
    const { sendLossPct, sentPackets, concealedPct, rttMs } = lossSince(report, entry.cursor);
    if (entry.tracker.receive(s.lossPct, concealedPct, now)) setJitterTarget(entry.link.pc, entry.tracker.jitterTargetMs);
    if (sendLossPct === null) return;
    const previous = entry.tracker.level;
    const level = entry.tracker.sendReport(sendLossPct, now, sentPackets, rttMs);
    if (level === null || !this.host.protect) return;
    await this.host.protect(peerId, level);
    this.host.emit('protection-changed', { peerId, previous, ...this.#snapshot(entry) });
  }

  /**
   * @param {LinkEntry} entry
   * @returns {import('./protection.js').Protection}
   */
  #snapshot(entry) {
    const t = entry.tracker;
    return {
      level: t.level,
      sendLossPct: t.sendLossPct,
      recvLossPct: t.recvLossPct,
      concealedPct: t.concealedPct,
      ...entry.link.protection,
      redundancy: entry.link.redBoost?.level ?? null,
      jitterTargetMs: t.jitterTargetMs,
    };
  }

  /**
   * A link's loss protection now (protection.js): a mesh peer's, or with
   * `null` the SFU link's; null before its first look.
   * @param {string | null} peerId
   * @returns {import('./protection.js').Protection | null}
   */
  protection(peerId) {
    const entry = peerId === null ? this.sfuEntry : this.samples.get(peerId);
    return entry ? this.#snapshot(entry) : null;
  }

  async #speakerTick() {
    const selfId = this.host.selfId();
    if (!selfId) return;
    /** @type {Array<[string, number]>} */
    const levels = this.host.sfuLevels?.() ?? [];
    for (const [peerId, link] of this.host.peers) levels.push([peerId, link.audioLevel()]);
    levels.push([selfId, this.host.muted() ? 0 : await this.#selfLevel()]);
    const now = performance.now();
    let loudest = /** @type {[string, number] | null} */ (null);
    for (const entry of levels) if (entry[1] > SPEAKING_LEVEL && (!loudest || entry[1] > loudest[1])) loudest = entry;
    if (loudest) {
      this.lastVoiceAt = now;
      if (loudest[0] === this.activeSpeaker) {
        this.candidate = null;
      } else if (loudest[0] === this.candidate) {
        this.candidateTicks += 1;
      } else {
        this.candidate = loudest[0];
        this.candidateTicks = 1;
      }
      // The first speaker of a quiet room takes over at once.
      if (this.candidate !== null && (this.candidateTicks >= 2 || this.activeSpeaker === null)) {
        this.#setSpeaker(this.candidate, loudest[1]);
      }
    } else if (this.activeSpeaker !== null && now - this.lastVoiceAt >= SILENCE_MS) {
      this.#setSpeaker(null, 0);
    }
  }

  /**
   * @param {string | null} peerId
   * @param {number} level
   */
  #setSpeaker(peerId, level) {
    this.candidate = null;
    this.candidateTicks = 0;
    if (this.activeSpeaker === peerId) return;
    this.activeSpeaker = peerId;
    this.host.emit('active-speaker', { peerId, level, self: peerId !== null && peerId === this.host.selfId() });
  }

  /** Our microphone's level (0..1) from the first sender's `media-source` stats. */
  async #selfLevel() {
    const senders = [...this.host.peers.values()].map((link) => link.pc.getSenders().find((s) => s.track?.kind === 'audio'));
    senders.push(this.host.sfuSender?.() ?? undefined);
    for (const sender of senders) {
      if (!sender) continue;
      const report = await sender.getStats().catch(() => null);
      let level = 0;
      report?.forEach((s) => {
        if (s.type === 'media-source' && typeof s.audioLevel === 'number') level = Math.max(level, s.audioLevel);
      });
      return level;
    }
    return 0;
  }
}
