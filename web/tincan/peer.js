// One RTCPeerConnection to one remote peer, negotiated with the "perfect
// negotiation" pattern: both sides may offer at any time; on a collision the
// polite side rolls back and the impolite side ignores the other's offer.
// Politeness is decided by comparing peer ids, so the two sides always agree.
// ICE candidates trickle as they are found; a failed ICE transport restarts.
//
// Order-proof: the signaling server relays frames in any order (API Gateway
// invokes one Lambda per frame, concurrently), so every payload says where
// it belongs, inside the verbatim `data`:
//
//   {lid, seq, description}        an offer: `lid` names the sender's
//                                  RTCPeerConnection, `seq` counts the
//                                  descriptions it has sent (offers and answers)
//   {lid, seq, re, description}    an answer to the receiver's offer number `re`
//   {lid, candidate}               a candidate; its `usernameFragment` names the
//                                  description (ICE generation) it belongs to
//
// A description older than one already applied (lower `seq`, an answer to
// an offer we no longer have, or one from the peer's previous connection) is
// dropped, not applied. A candidate whose ufrag is not in the current remote
// description is held until a description with that ufrag is applied (it
// overtook its description), and forgotten after a minute (it belonged to an
// offer that was ignored or superseded). A description from a newer remote
// connection (higher `lid`) than the one we negotiated with means the peer
// rebuilt its side: the link reports `remote-restarted` and the client builds
// a fresh one.

import { summarizeStats } from './stats.js';
import { RedBooster, boostedBitrateKbps } from './red-boost.js';
import { tuneOpusSdp, preferRed, opusParams, protectSdp } from './opus.js';
import { setMaxBitrate, protectionSettings } from './protection.js';

/**
 * @typedef {{peerId: string, userId: string, displayName: string, muted: boolean}} PeerInfo
 * @typedef {{
 *   lid?: string, seq?: number, re?: number,
 *   description?: RTCSessionDescriptionInit,
 *   candidate?: RTCIceCandidateInit | null,
 * }} SignalData
 */

/** How long ICE may stay `disconnected` before we restart it, in ms. */
const DISCONNECTED_GRACE_MS = 4_000;
/** A connection still `new` this long after an exchange has stalled; restart ICE. */
const STALL_CHECK_MS = 6_000;
/** An offer unanswered this long was lost (or its answer was): send it again. */
const OFFER_TIMEOUT_MS = 8_000;
/** A passive link offers itself if no offer came within this long, in ms. */
const PASSIVE_TIMEOUT_MS = 4_000;
/** Candidates held for a description not yet seen: at most this many, this long. */
const MAX_HELD_CANDIDATES = 64;
const HELD_CANDIDATE_MS = 60_000;

/**
 * A new link id: the creation time (zero-padded base 36, so ids of one
 * sender sort by age as strings) and a random part.
 */
export function newLinkId() {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${Date.now().toString(36).padStart(9, '0')}.${random[0].toString(36)}${random[1].toString(36)}`;
}

/**
 * The ICE ufrags of a session description.
 * @param {string | undefined} sdp
 */
function ufragsOf(sdp) {
  return new Set([...(sdp ?? '').matchAll(/^a=ice-ufrag:(\S+)/gm)].map((m) => m[1]));
}

/**
 * Events: `track` (`detail.stream`), `state` (`detail {connectionState,
 * iceConnectionState}`), `ice-restart`, `first-packet` (`detail.at`, a
 * `performance.now()` timestamp), `error` (`detail.error`), `stale`
 * (`detail.reason`: a payload recognised as out of date and dropped),
 * `remote-restarted` (`detail.data`: a description from a newer connection of
 * the peer; the owner replaces this link).
 */
export class PeerLink extends EventTarget {
  /**
   * @param {{
   *   selfId: string,
   *   peer: PeerInfo,
   *   rtcConfig: RTCConfiguration,
   *   localStream: MediaStream | null,
   *   sendSignal: (data: SignalData) => void,
   *   iceServers?: () => Promise<RTCIceServer[] | null>,
   *   passive?: boolean,
   *   passiveTimeoutMs?: number,
   *   opus?: import('./opus.js').OpusOptions,
   * }} options
   *   `iceServers`, if given, is asked before an ICE restart for current
   *   servers (TURN credentials expire during long calls). `passive` links
   *   wait for the peer's offer (the newcomer offers) and offer themselves
   *   only if none came within `passiveTimeoutMs`. `opus` tunes the codec
   *   (see opus.js): every description sent and applied carries it.
   */
  constructor(options) {
    super();
    this.peer = { ...options.peer };
    this.peerId = options.peer.peerId;
    this.polite = options.selfId < options.peer.peerId;
    this.sendSignal = options.sendSignal;
    this.freshIceServers = options.iceServers ?? null;
    this.pc = new RTCPeerConnection(options.rtcConfig);
    this.opus = options.opus ?? {};
    /** @type {import('./protection.js').ProtectionSettings} loss protection of what we send (protection.js) */
    this.protection = protectionSettings(0, this.opus);
    /** A renegotiation for a protection change waits for a stable signaling state. */
    this.renegotiatePending = false;
    this.remoteStream = new MediaStream();
    /** This side's connection id, sent with every payload. */
    this.localId = newLinkId();
    /** @type {string | null} the peer's connection id we negotiate with */
    this.remoteId = null;
    /** Descriptions sent so far; the number of our current offer. */
    this.localSeq = 0;
    this.localOfferSeq = 0;
    /** Highest description number applied from `remoteId`. */
    this.remoteSeq = 0;
    /** @type {Array<{candidate: RTCIceCandidateInit, at: number}>} */
    this.heldCandidates = [];
    /** Counters, for tests and debugging. */
    this.candidatesHeld = 0;
    this.staleDropped = 0;
    this.passive = Boolean(options.passive);
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.isSettingRemoteAnswerPending = false;
    this.iceRestarts = 0;
    this.closed = false;
    /** @type {number | null} */ this.firstPacketAt = null;
    this.createdAt = performance.now();
    /** When our current offer went out; offers sent again after a loss. */
    this.offerSentAt = 0;
    this.offersResent = 0;
    /** @type {Promise<void>} */ this.queue = Promise.resolve();
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.disconnectTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.passiveTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.firstPacketTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.stallTimer = undefined;
    /** @type {RedBooster | null} more RED redundancy when the far end reports loss */
    this.redBoost = null;
    /** @type {ReturnType<typeof summarizeStats> extends Promise<infer T> ? T : never} */
    this.lastStats = /** @type {any} */ (null);

    if (options.localStream) {
      for (const track of options.localStream.getAudioTracks()) this.pc.addTrack(track, options.localStream);
    } else {
      this.pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    this.#preferCodecs();
    this.#boostRed();
    if (this.passive) {
      this.passiveTimer = setTimeout(() => {
        if (!this.passive || this.closed) return;
        this.passive = false;
        if (!this.pc.remoteDescription && this.pc.signalingState === 'stable') this.#offer();
      }, options.passiveTimeoutMs ?? PASSIVE_TIMEOUT_MS);
    }
    this.#wire();
    this.#watchFirstPacket();
    this.#watchStall();
  }

  /**
   * Feeds one relayed `signal` payload. Calls are serialized.
   * @param {SignalData} data
   */
  handleSignal(data) {
    this.queue = this.queue.then(() => this.#handle(data)).catch((error) => this.#fail(error));
    return this.queue;
  }

  /** Candidates held for a description not seen yet (to hand to a replacement link). */
  takeHeldCandidates() {
    const held = this.heldCandidates;
    this.heldCandidates = [];
    return held;
  }

  /** @param {Array<{candidate: RTCIceCandidateInit, at: number}>} held */
  holdCandidates(held) {
    this.heldCandidates.push(...held);
    this.heldCandidates.splice(0, Math.max(0, this.heldCandidates.length - MAX_HELD_CANDIDATES));
  }

  /**
   * Sends a different microphone track without renegotiating.
   * @param {MediaStreamTrack | null} track
   */
  async replaceTrack(track) {
    const sender = this.pc.getSenders().find((s) => s.track?.kind === 'audio' || s.track === null);
    if (sender) await sender.replaceTrack(track);
  }

  /** The receiver's current audio level (0..1) from RTP header extensions; cheap enough for 10 Hz. */
  audioLevel() {
    let level = 0;
    for (const receiver of this.pc.getReceivers()) {
      for (const source of receiver.getSynchronizationSources?.() ?? []) {
        // Drop values older than a second: a silent peer sends no updates.
        if (performance.timeOrigin + performance.now() - source.timestamp < 1000) {
          level = Math.max(level, source.audioLevel ?? 0);
        }
      }
    }
    return level;
  }

  /** A summary of `getStats()` for the UI (RTT, jitter, loss, bitrate, path). */
  async stats() {
    this.lastStats = await summarizeStats(await this.pc.getStats(), this.lastStats);
    return this.lastStats;
  }

  /**
   * What was negotiated for the audio we send, from the applied remote
   * description: RED first or not, and the Opus parameters our encoder follows.
   * @returns {{red: boolean, fec: boolean, dtx: boolean, maxBitrateKbps: number | null} | null}
   */
  negotiated() {
    return opusParams(this.pc.remoteDescription?.sdp);
  }

  /**
   * Changes the loss protection of what we send (protection.js): the cap at
   * once with `setParameters`; RED and packet time through a renegotiation,
   * since our encoder follows the remote description we apply.
   * @param {import('./protection.js').ProtectionSettings} settings
   */
  async setProtection(settings) {
    if (this.closed) return;
    const before = this.protection;
    this.protection = { ...settings };
    this.#protectionCap = settings.maxBitrateKbps;
    await this.#applyBitrate();
    if (before.red !== settings.red || before.ptimeMs !== settings.ptimeMs) {
      this.renegotiatePending = true;
      this.#renegotiateWhenStable();
    }
  }

  /** @type {number | null} the cap the protection level asks for (null: none) */ #protectionCap = null;

  /**
   * The one place that sets what our encoder may send: the protection
   * level's cap on a congested link; else, while RED carries two or more
   * earlier frames, the boosted bitrate (red-boost.js), within the app's
   * own `maxBitrateKbps`; else nothing. What it chose shows as the link's
   * `protection.maxBitrateKbps`.
   */
  async #applyBitrate() {
    const boost = boostedBitrateKbps(this.redBoost?.level ?? 0);
    const appCap = this.opus.maxBitrateKbps ?? null;
    const kbps = this.#protectionCap ?? (boost !== null && appCap !== null ? Math.min(boost, appCap) : boost);
    this.protection = { ...this.protection, maxBitrateKbps: kbps };
    await setMaxBitrate(this.pc.getSenders().find((s) => s.track?.kind === 'audio') ?? null, kbps);
  }

  #renegotiateWhenStable() {
    const pc = this.pc;
    if (!this.renegotiatePending || this.closed || !pc.remoteDescription) return;
    if (pc.signalingState !== 'stable' || this.makingOffer) return;
    this.renegotiatePending = false;
    this.passive = false;
    void this.#offer();
  }

  /** Restarts ICE (new ufrag/pwd, new candidates); perfect negotiation does the rest. */
  async restartIce() {
    if (this.closed) return;
    this.iceRestarts += 1;
    this.passive = false;
    this.dispatchEvent(new CustomEvent('ice-restart', { detail: { count: this.iceRestarts } }));
    try {
      const iceServers = await this.freshIceServers?.();
      if (iceServers && !this.closed) this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch {
      // Keep the servers we have; the restart may still work directly.
    }
    if (this.closed) return;
    this.pc.restartIce();
    // A link that never negotiated gets no `negotiationneeded` from a restart.
    if (!this.pc.remoteDescription && this.pc.signalingState === 'stable' && !this.makingOffer) this.#offer();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.passiveTimer);
    clearInterval(this.firstPacketTimer);
    clearInterval(this.stallTimer);
    this.redBoost?.close();
    this.pc.close();
    for (const track of this.remoteStream.getTracks()) track.stop();
    this.#emitState();
  }

  #wire() {
    const pc = this.pc;
    pc.onnegotiationneeded = () => this.#offer();
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.sendSignal({ lid: this.localId, candidate: candidate.toJSON() });
    };
    pc.ontrack = ({ track }) => {
      if (!this.remoteStream.getTracks().includes(track)) this.remoteStream.addTrack(track);
      this.dispatchEvent(new CustomEvent('track', { detail: { stream: this.remoteStream, track } }));
    };
    pc.oniceconnectionstatechange = () => {
      const state = pc.iceConnectionState;
      clearTimeout(this.disconnectTimer);
      if (state === 'failed') {
        this.restartIce();
      } else if (state === 'disconnected') {
        this.disconnectTimer = setTimeout(() => {
          if (pc.iceConnectionState === 'disconnected') this.restartIce();
        }, DISCONNECTED_GRACE_MS);
      }
      this.#emitState();
    };
    pc.onconnectionstatechange = () => this.#emitState();
    pc.onsignalingstatechange = () => {
      if (pc.signalingState === 'stable') queueMicrotask(() => this.#renegotiateWhenStable());
    };
  }

  /** Makes and sends an offer, unless we are waiting for the peer's. */
  async #offer() {
    if (this.closed || this.passive) return;
    const pc = this.pc;
    try {
      this.makingOffer = true;
      await pc.setLocalDescription();
      if (pc.localDescription?.type === 'offer' && !this.closed) {
        this.localSeq += 1;
        this.localOfferSeq = this.localSeq;
        this.offerSentAt = performance.now();
        this.sendSignal({ lid: this.localId, seq: this.localSeq, description: this.#tuned(pc.localDescription) });
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.makingOffer = false;
    }
  }

  /** @param {SignalData} data */
  async #handle(data) {
    if (this.closed) return;
    if (data.description) await this.#handleDescription(data, data.description);
    else if (data.candidate) await this.#handleCandidate(data.candidate);
  }

  /**
   * @param {SignalData} data
   * @param {RTCSessionDescriptionInit} description
   */
  async #handleDescription(data, description) {
    const pc = this.pc;
    const lid = typeof data.lid === 'string' ? data.lid : null;
    const seq = typeof data.seq === 'number' ? data.seq : 0;
    if (lid !== null && this.remoteId !== null && lid !== this.remoteId) {
      if (lid < this.remoteId) return this.#stale(`${description.type} from the peer's previous connection`);
      if (pc.remoteDescription) {
        // The peer rebuilt its connection; this one cannot follow (new DTLS).
        this.dispatchEvent(new CustomEvent('remote-restarted', { detail: { data } }));
        return;
      }
      this.remoteSeq = 0;
    }
    if (lid !== null && this.remoteId !== null && lid === this.remoteId && seq <= this.remoteSeq) {
      return this.#stale(`${description.type} ${seq} after ${this.remoteSeq}`);
    }
    if (description.type === 'answer') {
      const expected = pc.signalingState === 'have-local-offer' || this.isSettingRemoteAnswerPending;
      if (!expected || (typeof data.re === 'number' && data.re !== this.localOfferSeq)) {
        return this.#stale(`answer to offer ${data.re ?? '?'} in ${pc.signalingState} (our offer ${this.localOfferSeq})`);
      }
    }
    // Perfect negotiation: an offer that collides with ours.
    const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.isSettingRemoteAnswerPending);
    const offerCollision = description.type === 'offer' && !readyForOffer;
    this.ignoreOffer = !this.polite && offerCollision;
    if (this.ignoreOffer) return;
    this.isSettingRemoteAnswerPending = description.type === 'answer';
    try {
      // Implicit rollback of our own offer when polite and colliding.
      await pc.setRemoteDescription(this.#tuned(description, true));
    } finally {
      this.isSettingRemoteAnswerPending = false;
    }
    if (lid !== null) {
      this.remoteId = lid;
      this.remoteSeq = Math.max(this.remoteSeq, seq);
    }
    if (description.type === 'offer') {
      this.passive = false;
      clearTimeout(this.passiveTimer);
      this.#preferCodecs();
      await pc.setLocalDescription();
      if (pc.localDescription && !this.closed) {
        this.localSeq += 1;
        this.sendSignal({ lid: this.localId, seq: this.localSeq, re: seq, description: this.#tuned(pc.localDescription) });
      }
    }
    await this.#flushHeldCandidates();
  }

  /** @param {RTCIceCandidateInit} candidate */
  async #handleCandidate(candidate) {
    if (this.#fitsRemoteDescription(candidate)) {
      await this.pc.addIceCandidate(candidate);
    } else {
      // It overtook its description (or belongs to an ignored offer): hold it.
      this.candidatesHeld += 1;
      this.holdCandidates([{ candidate, at: performance.now() }]);
    }
  }

  /** @param {RTCIceCandidateInit} candidate */
  #fitsRemoteDescription(candidate) {
    const remote = this.pc.remoteDescription;
    if (!remote) return false;
    const ufrag = candidate.usernameFragment;
    return !ufrag || ufragsOf(remote.sdp).has(ufrag);
  }

  async #flushHeldCandidates() {
    const now = performance.now();
    const keep = [];
    for (const held of this.takeHeldCandidates()) {
      if (this.closed) return;
      if (this.#fitsRemoteDescription(held.candidate)) {
        await this.pc.addIceCandidate(held.candidate).catch((error) => this.#fail(error));
      } else if (now - held.at < HELD_CANDIDATE_MS) {
        keep.push(held);
      }
    }
    this.holdCandidates(keep);
  }

  /**
   * A description with Opus tuned per `opus` (what we ask peers to send,
   * and, applied to theirs, how our encoder sends: then with our loss
   * protection too).
   * @param {RTCSessionDescription | RTCSessionDescriptionInit} description
   * @param {boolean} [applied]  a description of the peer's that we apply
   * @returns {RTCSessionDescriptionInit}
   */
  #tuned(description, applied = false) {
    const { type, sdp } = description;
    if (sdp === undefined) return { type };
    const tuned = tuneOpusSdp(sdp, this.opus);
    return { type, sdp: applied ? protectSdp(tuned, this.protection) : tuned };
  }

  /** RED before Opus on every audio transceiver, where the browser offers it. */
  #preferCodecs() {
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.receiver.track.kind === 'audio' && transceiver.currentDirection !== 'stopped') preferRed(transceiver, this.opus);
    }
  }

  /** @param {string} reason */
  #stale(reason) {
    this.staleDropped += 1;
    this.dispatchEvent(new CustomEvent('stale', { detail: { reason } }));
  }

  /**
   * Safety nets, for the whole life of the link: an offer that got no answer
   * (it or its answer was lost: a socket that died under it, a rate limit,
   * an impolite peer busy with its own offer) is sent again, with a new
   * number; an exchange that completed but never started ICE (a browser that
   * dropped its agent in a rollback) restarts ICE.
   */
  /**
   * Lets the sender's RED carry more earlier frames while the far end
   * reports loss, and none on a congested link (red-boost.js).
   */
  #boostRed() {
    if (this.opus.red === false) return;
    const sender = this.pc.getSenders().find((s) => s.track?.kind === 'audio');
    if (sender) this.redBoost = RedBooster.follow(this.pc, sender, { onLevel: () => void this.#applyBitrate() });
  }

  #watchStall() {
    let quietSince = performance.now();
    this.stallTimer = setInterval(() => {
      const pc = this.pc;
      if (this.closed) return clearInterval(this.stallTimer);
      const now = performance.now();
      if (pc.signalingState === 'have-local-offer' && !this.makingOffer && now - this.offerSentAt > OFFER_TIMEOUT_MS) {
        this.#resendOffer();
        return;
      }
      const idle = pc.signalingState === 'stable' && pc.iceConnectionState === 'new' && pc.remoteDescription;
      if (!idle) quietSince = now;
      else if (now - quietSince >= STALL_CHECK_MS) {
        quietSince = now;
        this.restartIce();
      }
    }, 1_000);
  }

  /**
   * Sends the pending offer again, unchanged, under a new number. Never a
   * rollback and a fresh offer: the peer may have applied the first one (only
   * its answer was lost), and after rolling back a first offer the browser
   * numbers its m-lines anew, which the peer then refuses ("the order of
   * m-lines in subsequent offer doesn't match"), so the two would never agree.
   */
  #resendOffer() {
    this.offerSentAt = performance.now();
    this.queue = this.queue
      .then(() => {
        const offer = this.pc.localDescription;
        if (this.closed || this.pc.signalingState !== 'have-local-offer' || offer?.type !== 'offer') return;
        this.offersResent += 1;
        this.localSeq += 1;
        this.localOfferSeq = this.localSeq;
        this.sendSignal({ lid: this.localId, seq: this.localSeq, description: this.#tuned(offer) });
      })
      .catch((error) => this.#fail(error));
  }

  #watchFirstPacket() {
    const started = performance.now();
    this.firstPacketTimer = setInterval(async () => {
      if (this.closed || performance.now() - started > 60_000) return clearInterval(this.firstPacketTimer);
      const receiver = this.pc.getReceivers()[0];
      let got = (receiver?.getSynchronizationSources?.() ?? []).length > 0;
      if (!got) {
        const report = await this.pc.getStats().catch(() => null);
        report?.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.packetsReceived > 0) got = true;
        });
      }
      if (got && this.firstPacketAt === null) {
        this.firstPacketAt = performance.now();
        clearInterval(this.firstPacketTimer);
        const detail = { at: this.firstPacketAt, sinceCreatedMs: this.firstPacketAt - this.createdAt };
        this.dispatchEvent(new CustomEvent('first-packet', { detail }));
      }
    }, 50);
  }

  #emitState() {
    this.dispatchEvent(
      new CustomEvent('state', {
        detail: {
          connectionState: this.closed ? 'closed' : this.pc.connectionState,
          iceConnectionState: this.closed ? 'closed' : this.pc.iceConnectionState,
        },
      }),
    );
  }

  /** @param {unknown} error */
  #fail(error) {
    if (this.closed) return;
    this.dispatchEvent(new CustomEvent('error', { detail: { error } }));
  }
}
