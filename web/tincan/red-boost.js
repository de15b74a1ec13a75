// More redundancy on a lossy link. Browsers send RED (RFC 2198) with one
// earlier Opus frame; on a link losing a fifth of its packets that still
// leaves about 4 % of frames lost twice over. Where the browser has
// encoded transforms (`RTCRtpScriptTransform`), a worker rewrites each RED
// packet a sender sends to carry up to three earlier frames, as many as the
// loss the far end reports calls for: one under 3 %, two under 12 %, three
// above; up at once, down after two calmer reports in a row. Each extra
// frame costs about the Opus bitrate again, so loss that comes with a
// queue (the round trip 150 ms above the lowest seen, or over 500 ms: a
// link too thin for what is sent) sets it back to one at once, since more redundancy would
// only fill the queue further. The receiving browser needs nothing: it
// decodes RED with any number of blocks.
//
// With two or more earlier frames the sender also asks its encoder for
// BOOSTED_KBPS (`boostedBitrateKbps`, applied by the link with the rest of
// its bitrate decisions): the far end reports that loss to the Opus encoder
// too, which then spends much of its default 32 kbit/s on in-band FEC and
// a narrower band, and the primary frames lose more than RED wins back
// (mesh, 20 % loss: PESQ-WB 2.5 at 32 kbit/s, 3.6 at 64).

/** The loss (0..1) each level starts at: level n+1 above LEVEL_AT[n]. */
const LEVEL_AT = [0.03, 0.12];
/** Reports in a row that must ask for less before the level falls. */
const CALM_REPORTS = 2;
import { QueueWatch } from './protection.js';

/** The most earlier frames a packet carries. */
export const MAX_LEVEL = 3;
/** The Opus bitrate (kbit/s) asked for while RED carries two or more earlier frames. */
export const BOOSTED_KBPS = 64;

/** The encoder bitrate (kbit/s) a redundancy level asks for; null: the default. */
export function boostedBitrateKbps(/** @type {number} */ level) {
  return level >= 2 ? BOOSTED_KBPS : null;
}

/** The redundancy a reported loss (0..1) calls for. */
export function levelFor(/** @type {number} */ fractionLost) {
  return 1 + LEVEL_AT.filter((at) => fractionLost >= at).length;
}

/**
 * The level after one more report: up at once, down one step after
 * `CALM_REPORTS` reports in a row that call for less; to none at once when
 * the link is `congested`; never above `max`.
 * @param {{level: number, calm: number}} state
 * @param {number} fractionLost
 * @param {boolean} [congested]
 * @param {number} [max]
 */
export function nextLevel(state, fractionLost, congested = false, max = MAX_LEVEL) {
  if (congested) return { level: 0, calm: 0 };
  const wanted = Math.min(levelFor(fractionLost), max);
  if (wanted >= state.level) return { level: wanted, calm: 0 };
  const calm = state.calm + 1;
  return calm >= CALM_REPORTS ? { level: state.level - 1, calm: 0 } : { level: state.level, calm };
}

/** @typedef {{maxLevel?: number, onLevel?: (level: number) => void}} BoosterOptions */

export class RedBooster {
  /** @type {Worker} */ #worker;
  #state = { level: 1, calm: 0 };
  /** @type {number | null} */ #redPt = null;
  #queue = new QueueWatch();

  /**
   * Puts the transform on `sender`; null where the browser has no encoded
   * transforms (RED then stays at the browser's one earlier frame).
   * `maxLevel`: the most earlier frames it may add (1 on the SFU link);
   * `onLevel`: called with each new level.
   * @param {RTCRtpSender} sender
   * @param {BoosterOptions} [options]
   */
  static attach(sender, options = {}) {
    const Transform = /** @type {any} */ (globalThis).RTCRtpScriptTransform;
    if (typeof Transform !== 'function' || typeof Worker !== 'function') return null;
    try {
      const worker = new Worker(new URL('./red-worker.js', import.meta.url), { name: 'tincan-red' });
      /** @type {any} */ (sender).transform = new Transform(worker, {});
      const booster = new RedBooster(worker, options.maxLevel ?? MAX_LEVEL);
      booster.#onLevel = options.onLevel ?? null;
      return booster;
    } catch {
      return null;
    }
  }

  /**
   * `attach`, then every 2 s reads `pc`'s stats: each new receiver report
   * about what `sender` sends (`remote-inbound-rtp`), with its round trip
   * (else the ICE pair's), sets the level. `close()` stops it.
   * @param {RTCPeerConnection} pc
   * @param {RTCRtpSender} sender
   * @param {BoosterOptions} [options]
   */
  static follow(pc, sender, options = {}) {
    const booster = RedBooster.attach(sender, options);
    if (!booster) return null;
    let lastReport = 0;
    booster.#timer = setInterval(async () => {
      const report = await pc.getStats().catch(() => null);
      if (!report || booster.#closed) return;
      booster.negotiated(sender);
      /** @type {number | null} */
      let pairRttMs = null;
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') pairRttMs = s.currentRoundTripTime * 1000;
      });
      report.forEach((/** @type {any} */ s) => {
        // Each receiver report once (the far end reports every 1-5 s).
        if (s.type !== 'remote-inbound-rtp' || s.kind !== 'audio' || s.timestamp === lastReport) return;
        lastReport = s.timestamp;
        const rttMs = typeof s.roundTripTime === 'number' && s.roundTripTime > 0 ? s.roundTripTime * 1000 : pairRttMs;
        booster.report(s.fractionLost, rttMs);
      });
    }, 2_000);
    return booster;
  }

  /** @type {ReturnType<typeof setInterval> | undefined} */ #timer = undefined;
  #closed = false;

  #maxLevel;
  /** @type {((level: number) => void) | null} */ #onLevel = null;

  /**
   * @param {Worker} worker
   * @param {number} [maxLevel]
   */
  constructor(worker, maxLevel = MAX_LEVEL) {
    this.#worker = worker;
    this.#maxLevel = maxLevel;
  }

  /** Earlier frames each RED packet carries (0 to 3; 1 is the browser's own). */
  get level() {
    return this.#state.level;
  }

  /**
   * Tells the worker which payload type is RED on this sender, from its
   * negotiated parameters (call after each negotiation).
   * @param {RTCRtpSender} sender
   */
  negotiated(sender) {
    const codecs = sender.getParameters().codecs ?? [];
    const red = codecs.find((c) => c.mimeType.toLowerCase() === 'audio/red');
    const pt = red?.payloadType ?? null;
    if (pt !== this.#redPt) {
      this.#redPt = pt;
      this.#worker.postMessage({ redPt: pt });
    }
  }

  /** Whether the last two reports looked like a queue rather than random loss. */
  congested = false;
  /** Reports in a row whose round trip showed a queue. */
  #queued = 0;

  /**
   * Takes the loss (0..1) the far end reports for what this sender sends,
   * and the round trip (ms) measured with it; returns the level now in force.
   * @param {number | null | undefined} fractionLost
   * @param {number | null | undefined} [rttMs]
   */
  report(fractionLost, rttMs) {
    if (typeof fractionLost !== 'number' || !Number.isFinite(fractionLost)) return this.level;
    const queued = this.#queue.observe(rttMs);
    if (queued !== null) {
      this.#queued = queued ? this.#queued + 1 : 0;
      // Two in a row: one slow report (a busy machine, a lost report) is not a queue.
      this.congested = this.#queued >= 2;
    }
    const before = this.#state.level;
    this.#state = nextLevel(this.#state, fractionLost, this.congested, this.#maxLevel);
    if (this.#state.level !== before) {
      this.#worker.postMessage({ level: this.#state.level });
      this.#onLevel?.(this.#state.level);
    }
    return this.#state.level;
  }

  close() {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#worker.terminate();
  }
}
