// Tincan's browser client: accounts, signaling and a mesh of peer
// connections behind one EventTarget. Usable without the bundled page:
//
//   import { TincanClient } from '/tincan-client.js';
//   const client = new TincanClient();
//   await client.session.login('ada', 'secret');
//   const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
//   client.addEventListener('track', (e) => playSomewhere(e.detail.peerId, e.detail.stream));
//   await client.join('standup', { stream: mic });
//
// Protocol: DESIGN.md, "Signaling protocol". A peer is named by its
// connection id; a reconnect gets a new one, so after a rejoin every peer
// connection is built afresh.
//
// Who offers first: the newcomer (it gets `joined` with the peers already
// there) builds a connection to each and offers; the others build theirs when
// that offer arrives. Perfect negotiation still handles every later
// renegotiation (ICE restarts from either side) without glare, but starting
// one-sided avoids a rollback right at set-up, where Chromium can leave the
// rolled-back side's ICE agent idle.

import { AuthSession, TincanError } from './tincan/session.js';
import { SignalingChannel } from './tincan/signaling.js';
import { PeerLink } from './tincan/peer.js';

export { AuthSession, TincanError, SignalingChannel, PeerLink };
export { summarizeStats } from './tincan/stats.js';
export { jwtExpiry } from './tincan/session.js';

/**
 * @typedef {import('./tincan/peer.js').PeerInfo} PeerInfo
 * @typedef {'idle' | 'joining' | 'joined' | 'reconnecting' | 'left'} CallState
 * @typedef {{room: string, self: PeerInfo, peers: PeerInfo[], iceServers: RTCIceServer[]}} Joined
 */

/** Room ids the server accepts (DESIGN.md). */
export const ROOM_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Server error codes that end a join attempt instead of being informational. */
const JOIN_ERRORS = new Set(['room-full', 'bad-request', 'too-large', 'store-unavailable', 'internal']);

/**
 * Events (all `CustomEvent`s):
 * - `state` `{state: CallState}`
 * - `joined` `Joined` (also after every rejoin)
 * - `peer-joined` `{peer}`, `peer-left` `{peerId, peer}`, `peer-muted` `{peerId, muted}`
 * - `track` `{peerId, stream}`: play it in an `<audio>` element
 * - `peer-state` `{peerId, connectionState, iceConnectionState}`
 * - `ice-restart` `{peerId, count}`
 * - `first-packet` `{peerId, ms, sinceLinkMs}`: time from `join()` (and from creating
 *   this peer's connection) to the first audio packet from that peer
 * - `reconnecting` `{attempt, delayMs, code}`, `reconnected`
 * - `self-muted` `{muted}`
 * - `error` `{code, message, fatal}`
 */
export class TincanClient extends EventTarget {
  /**
   * @param {{
   *   baseUrl?: string,
   *   session?: AuthSession,
   *   storage?: Storage | null,
   *   wsPath?: string,
   *   pingIntervalMs?: number,
   *   joinTimeoutMs?: number,
   *   rtcConfig?: RTCConfiguration,
   * }} [options]
   */
  constructor(options = {}) {
    super();
    this.baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? '').replace(/\/$/, '');
    this.session = options.session ?? new AuthSession({ baseUrl: this.baseUrl, storage: options.storage });
    this.wsPath = options.wsPath ?? '/ws';
    this.joinTimeoutMs = options.joinTimeoutMs ?? 15_000;
    this.extraRtcConfig = options.rtcConfig ?? {};
    /** @type {CallState} */
    this.state = 'idle';
    /** @type {string | null} the room we want to be in (kept across reconnects) */
    this.room = null;
    /** @type {PeerInfo | null} */
    this.self = null;
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @type {Map<string, PeerLink>} one connection per remote peer */
    this.peers = new Map();
    /** @type {'direct' | 'relayed' | null} last media path told to the server */
    this.reportedMediaPath = null;
    /** @type {Map<string, PeerInfo>} everyone else in the room, connected or not yet */
    this.roster = new Map();
    /** @type {MediaStream | null} */
    this.localStream = null;
    this.muted = false;
    /** @type {{joinStartedAt: number | null, firstPacketMs: number | null, reconnects: number}} */
    this.metrics = { joinStartedAt: null, firstPacketMs: null, reconnects: 0 };
    /** @type {{resolve: (j: Joined) => void, reject: (e: Error) => void, timer: ReturnType<typeof setTimeout>} | null} */
    this.pendingJoin = null;

    this.channel = new SignalingChannel({
      url: (ctx) => this.#socketUrl(ctx),
      pingIntervalMs: options.pingIntervalMs ?? 60_000,
    });
    this.channel.addEventListener('open', (e) => this.#onOpen(/** @type {CustomEvent} */ (e).detail));
    this.channel.addEventListener('message', (e) => this.#onMessage(/** @type {CustomEvent} */ (e).detail));
    this.channel.addEventListener('drop', (e) => this.#onDrop(/** @type {CustomEvent} */ (e).detail));
    this.channel.addEventListener('fatal', (e) => this.#onFatal(/** @type {CustomEvent} */ (e).detail.error));
  }

  /**
   * Joins `room` with `stream` as the microphone; resolves on `joined`.
   * Rejects with a `TincanError` (`room-full`, `bad-request`, `session-expired`, `timeout`, ...).
   * @param {string} room
   * @param {{stream?: MediaStream | null}} [options]
   * @returns {Promise<Joined>}
   */
  join(room, options = {}) {
    if (!ROOM_ID.test(room)) {
      return Promise.reject(
        new TincanError('bad-request', 'A room name is 1-64 letters, digits, "-" or "_".'),
      );
    }
    if (options.stream !== undefined) this.localStream = options.stream;
    this.#applyMute();
    this.pendingJoin?.reject(new TincanError('superseded', 'Another join started.'));
    this.room = room;
    this.metrics.joinStartedAt = performance.now();
    this.metrics.firstPacketMs = null;
    this.#setState('joining');
    const joined = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingJoin = null;
        this.#stop('idle');
        reject(new TincanError('timeout', 'The server did not answer the join in time.'));
      }, this.joinTimeoutMs);
      this.pendingJoin = { resolve, reject, timer };
    });
    if (this.channel.state === 'open') this.channel.send({ action: 'join', room });
    else this.channel.start();
    return /** @type {Promise<Joined>} */ (joined);
  }

  /** Leaves the room and closes the signaling connection. */
  leave() {
    if (this.channel.state === 'open') this.channel.send({ action: 'leave' });
    this.#stop('left');
  }

  /**
   * Mutes or unmutes the microphone (the track keeps running, so unmuting is instant).
   * @param {boolean} muted
   */
  setMuted(muted) {
    this.muted = muted;
    this.#applyMute();
    if (this.state === 'joined') this.channel.send({ action: 'mute', muted });
    this.#emit('self-muted', { muted });
  }

  /**
   * Switches the microphone (e.g. another device) on every peer connection.
   * @param {MediaStream} stream
   */
  async setLocalStream(stream) {
    this.localStream = stream;
    this.#applyMute();
    const track = stream.getAudioTracks()[0] ?? null;
    await Promise.all([...this.peers.values()].map((link) => link.replaceTrack(track)));
  }

  /** @param {{reconnect?: boolean, failedBeforeOpen?: boolean}} ctx */
  async #socketUrl(ctx) {
    // A socket refused before opening is most often an expired token (the
    // upgrade answers 401, which a browser cannot see): refresh and retry.
    const token = await this.session.accessToken({ force: Boolean(ctx.failedBeforeOpen) });
    const url = new URL(this.wsPath, this.baseUrl || globalThis.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', token);
    return url.toString();
  }

  /** @param {{reconnect: boolean}} detail */
  #onOpen(detail) {
    if (detail.reconnect) {
      this.metrics.reconnects += 1;
      this.#emit('reconnected', {});
    }
    if (this.room) this.channel.send({ action: 'join', room: this.room });
  }

  /** @param {any} msg */
  #onMessage(msg) {
    switch (msg?.type) {
      case 'joined':
        return this.#onJoined(msg);
      case 'peer-joined':
        // The newcomer offers; our connection is built when its offer arrives.
        this.#removePeer(msg.peer.peerId);
        this.roster.set(msg.peer.peerId, { ...msg.peer });
        return this.#emit('peer-joined', { peer: msg.peer });
      case 'peer-left': {
        const peer = this.roster.get(msg.peerId) ?? this.peers.get(msg.peerId)?.peer ?? null;
        this.roster.delete(msg.peerId);
        this.#removePeer(msg.peerId);
        return this.#emit('peer-left', { peerId: msg.peerId, peer });
      }
      case 'peer-muted': {
        const muted = Boolean(msg.muted);
        const known = this.roster.get(msg.peerId);
        if (known) known.muted = muted;
        const link = this.peers.get(msg.peerId);
        if (link) link.peer.muted = muted;
        return this.#emit('peer-muted', { peerId: msg.peerId, muted });
      }
      case 'signal': {
        if (!this.self || typeof msg.from !== 'string' || !msg.data) return;
        let link = this.peers.get(msg.from);
        if (!link) {
          const known = this.roster.get(msg.from);
          // A late candidate from someone who already left is dropped.
          if (!known && msg.data.description?.type !== 'offer') return;
          link = this.#addPeer(known ?? { peerId: msg.from, userId: '', displayName: 'Someone', muted: false });
        }
        link.handleSignal(msg.data);
        return;
      }
      case 'error':
        return this.#onServerError(msg);
      default:
        return; // pong and anything newer than this client
    }
  }

  /** @param {Joined} msg */
  /**
   * Tells the server, for call history, whether our media goes direct or
   * through a relay (relayed if any peer connection is), when that changes.
   */
  async #reportMediaPath() {
    // The selected pair settles a moment after `connected`.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const paths = await Promise.all([...this.peers.values()].map((link) => link.stats().then((s) => s.path, () => null)));
    const known = paths.filter(Boolean);
    if (known.length === 0) return;
    const path = known.includes('relayed') ? 'relayed' : 'direct';
    if (path === this.reportedMediaPath) return;
    this.reportedMediaPath = path;
    this.channel.send({ action: 'media', path });
  }

  #onJoined(msg) {
    this.reportedMediaPath = null;
    // After a reconnect we are a new peer: every old connection is stale.
    for (const peerId of [...this.peers.keys()]) this.#removePeer(peerId);
    this.self = msg.self;
    this.room = msg.room;
    this.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
    this.roster = new Map((msg.peers ?? []).map((p) => [p.peerId, { ...p }]));
    for (const peer of msg.peers ?? []) this.#addPeer(peer);
    if (this.muted && !msg.self.muted) this.channel.send({ action: 'mute', muted: true });
    this.#setState('joined');
    if (this.pendingJoin) {
      clearTimeout(this.pendingJoin.timer);
      this.pendingJoin.resolve(msg);
      this.pendingJoin = null;
    }
    this.#emit('joined', msg);
  }

  /** @param {{code: string, message: string}} msg */
  #onServerError(msg) {
    const code = String(msg.code ?? 'internal');
    const message = String(msg.message ?? code);
    const joining = this.state === 'joining' || (this.state === 'reconnecting' && this.channel.state === 'open');
    if (joining && JOIN_ERRORS.has(code)) {
      const error = new TincanError(code, message);
      if (this.pendingJoin) {
        clearTimeout(this.pendingJoin.timer);
        this.pendingJoin.reject(error);
        this.pendingJoin = null;
      }
      this.#stop('idle');
      this.#emit('error', { code, message, fatal: true });
      return;
    }
    this.#emit('error', { code, message, fatal: false });
  }

  /** @param {{code: number, attempt: number, delayMs: number}} detail */
  #onDrop(detail) {
    if (this.state === 'joined' || this.state === 'reconnecting') {
      this.#setState('reconnecting');
      this.#emit('reconnecting', { attempt: detail.attempt, delayMs: detail.delayMs, code: detail.code });
    }
  }

  /** @param {unknown} error */
  #onFatal(error) {
    const e = error instanceof TincanError ? error : new TincanError('internal', String(error));
    if (this.pendingJoin) {
      clearTimeout(this.pendingJoin.timer);
      this.pendingJoin.reject(e);
      this.pendingJoin = null;
    }
    this.#stop('idle');
    this.#emit('error', { code: e.code, message: e.message, fatal: true });
  }

  /**
   * @param {PeerInfo} peer
   * @returns {PeerLink}
   */
  #addPeer(peer) {
    this.#removePeer(peer.peerId);
    const self = /** @type {PeerInfo} */ (this.self);
    const link = new PeerLink({
      selfId: self.peerId,
      peer,
      rtcConfig: { ...this.extraRtcConfig, iceServers: [...this.iceServers, ...(this.extraRtcConfig.iceServers ?? [])] },
      localStream: this.localStream,
      sendSignal: (data) => {
        this.channel.send({ action: 'signal', to: peer.peerId, data });
      },
      iceServers: () => this.#currentIceServers(),
    });
    const peerId = peer.peerId;
    link.addEventListener('track', (e) => this.#emit('track', { peerId, stream: /** @type {CustomEvent} */ (e).detail.stream }));
    link.addEventListener('state', (e) => {
      const detail = /** @type {CustomEvent} */ (e).detail;
      this.#emit('peer-state', { peerId, ...detail });
      if (detail.connectionState === 'connected') this.#reportMediaPath();
    });
    link.addEventListener('ice-restart', (e) => this.#emit('ice-restart', { peerId, .../** @type {CustomEvent} */ (e).detail }));
    link.addEventListener('error', (e) => {
      const error = /** @type {CustomEvent} */ (e).detail.error;
      this.#emit('error', { code: 'webrtc', message: `${peer.displayName}: ${error?.message ?? error}`, fatal: false });
    });
    link.addEventListener('first-packet', (e) => {
      const { at, sinceCreatedMs } = /** @type {CustomEvent} */ (e).detail;
      const ms = this.metrics.joinStartedAt === null ? null : at - this.metrics.joinStartedAt;
      if (ms !== null && this.metrics.firstPacketMs === null) this.metrics.firstPacketMs = ms;
      this.#emit('first-packet', { peerId, ms, sinceLinkMs: sinceCreatedMs });
    });
    this.peers.set(peerId, link);
    return link;
  }

  /** @param {string} peerId */
  #removePeer(peerId) {
    const link = this.peers.get(peerId);
    if (!link) return;
    this.peers.delete(peerId);
    link.close();
  }

  /**
   * The room's ICE servers, with TURN credentials renewed from
   * `/turn-credentials` when they expire within a minute. TURN REST
   * usernames are `expiry:user`, so the expiry is read from the username.
   * @returns {Promise<RTCIceServer[]>}
   */
  async #currentIceServers() {
    const expiries = this.iceServers
      .map((s) => Number.parseInt(String(s.username ?? '').split(':')[0], 10))
      .filter((n) => Number.isFinite(n));
    if (expiries.length === 0 || Math.min(...expiries) * 1000 - Date.now() > 60_000) return this.iceServers;
    const reply = await this.session.request('GET', '/turn-credentials');
    if (Array.isArray(reply?.iceServers)) this.iceServers = reply.iceServers;
    return this.iceServers;
  }

  /** @param {CallState} next */
  #stop(next) {
    this.channel.stop();
    for (const peerId of [...this.peers.keys()]) this.#removePeer(peerId);
    this.roster.clear();
    this.self = null;
    if (next === 'left' || next === 'idle') this.room = null;
    if (this.pendingJoin) {
      clearTimeout(this.pendingJoin.timer);
      this.pendingJoin.reject(new TincanError('left', 'Left before the join finished.'));
      this.pendingJoin = null;
    }
    this.#setState(next);
  }

  #applyMute() {
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = !this.muted;
  }

  /** @param {CallState} state */
  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.#emit('state', { state });
  }

  /**
   * @param {string} type
   * @param {object} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
