// One RTCPeerConnection to one remote peer, negotiated with the "perfect
// negotiation" pattern: both sides may offer at any time; on a collision the
// polite side rolls back and the impolite side ignores the other's offer.
// Politeness is decided by comparing peer ids, so the two sides always agree.
// ICE candidates trickle as they are found; a failed ICE transport restarts.

import { summarizeStats } from './stats.js';

/**
 * @typedef {{peerId: string, userId: string, displayName: string, muted: boolean}} PeerInfo
 * @typedef {{description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit | null}} SignalData
 */

/** How long ICE may stay `disconnected` before we restart it, in ms. */
const DISCONNECTED_GRACE_MS = 4_000;
/** A connection still `new` this long after an exchange has stalled; restart ICE. */
const STALL_CHECK_MS = 6_000;

/**
 * Events: `track` (`detail.stream`), `state` (`detail {connectionState,
 * iceConnectionState}`), `ice-restart`, `first-packet` (`detail.at`, a
 * `performance.now()` timestamp), `error` (`detail.error`).
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
   * }} options
   *   `iceServers`, if given, is asked before an ICE restart for current
   *   servers (TURN credentials expire during long calls).
   */
  constructor(options) {
    super();
    this.peer = { ...options.peer };
    this.peerId = options.peer.peerId;
    this.polite = options.selfId < options.peer.peerId;
    this.sendSignal = options.sendSignal;
    this.freshIceServers = options.iceServers ?? null;
    this.pc = new RTCPeerConnection(options.rtcConfig);
    this.remoteStream = new MediaStream();
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.isSettingRemoteAnswerPending = false;
    this.iceRestarts = 0;
    this.closed = false;
    /** @type {number | null} */ this.firstPacketAt = null;
    this.createdAt = performance.now();
    /** @type {Promise<void>} */ this.queue = Promise.resolve();
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.disconnectTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.firstPacketTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.stallTimer = undefined;
    /** @type {ReturnType<typeof summarizeStats> extends Promise<infer T> ? T : never} */
    this.lastStats = /** @type {any} */ (null);

    if (options.localStream) {
      for (const track of options.localStream.getAudioTracks()) this.pc.addTrack(track, options.localStream);
    } else {
      this.pc.addTransceiver('audio', { direction: 'recvonly' });
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

  /** Restarts ICE (new ufrag/pwd, new candidates); perfect negotiation does the rest. */
  async restartIce() {
    if (this.closed) return;
    this.iceRestarts += 1;
    this.dispatchEvent(new CustomEvent('ice-restart', { detail: { count: this.iceRestarts } }));
    try {
      const iceServers = await this.freshIceServers?.();
      if (iceServers && !this.closed) this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch {
      // Keep the servers we have; the restart may still work directly.
    }
    if (!this.closed) this.pc.restartIce();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.disconnectTimer);
    clearInterval(this.firstPacketTimer);
    clearInterval(this.stallTimer);
    this.pc.close();
    for (const track of this.remoteStream.getTracks()) track.stop();
    this.#emitState();
  }

  #wire() {
    const pc = this.pc;
    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        if (pc.localDescription) this.sendSignal({ description: pc.localDescription.toJSON() });
      } catch (error) {
        this.#fail(error);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.sendSignal({ candidate: candidate.toJSON() });
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
  }

  /** @param {SignalData} data */
  async #handle(data) {
    if (this.closed) return;
    const pc = this.pc;
    if (data.description) {
      const description = data.description;
      // An answer is expected when we have a local offer (or are about to).
      const readyForOffer =
        !this.makingOffer && (pc.signalingState === 'stable' || this.isSettingRemoteAnswerPending);
      const offerCollision = description.type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && offerCollision;
      if (this.ignoreOffer) return;
      this.isSettingRemoteAnswerPending = description.type === 'answer';
      try {
        // Implicit rollback of our own offer when polite and colliding.
        await pc.setRemoteDescription(description);
      } finally {
        this.isSettingRemoteAnswerPending = false;
      }
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        if (pc.localDescription) this.sendSignal({ description: pc.localDescription.toJSON() });
      }
    } else if (data.candidate) {
      try {
        await pc.addIceCandidate(data.candidate);
      } catch (error) {
        // Candidates of an offer we ignored are expected to fail.
        if (!this.ignoreOffer) throw error;
      }
    }
  }

  /**
   * Safety net: if an offer/answer completed but ICE never started (a lost
   * message, or a browser that dropped its agent in a rollback), restart ICE.
   */
  #watchStall() {
    this.stallTimer = setInterval(() => {
      const pc = this.pc;
      if (this.closed || pc.connectionState === 'connected') return clearInterval(this.stallTimer);
      if (pc.signalingState === 'stable' && pc.iceConnectionState === 'new' && this.pc.remoteDescription) {
        this.restartIce();
      }
    }, STALL_CHECK_MS);
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
