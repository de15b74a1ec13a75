// Tincan's browser client: accounts, signaling, a mesh of peer connections
// or one connection to the room's SFU, and the people in the call, behind
// one EventTarget. Usable without the bundled page:
//
//   import { TincanClient } from '/tincan-client.js';
//   const client = new TincanClient();
//   await client.session.login('ada', 'secret');
//   client.on('participant-joined', ({ participant }) => console.log(participant.displayName));
//   await client.join('standup');   // opens the microphone; plays everyone else
//
// Protocol: docs/protocol.md. A peer is named by an opaque
// participant id that stays the same across socket reconnects.
//
// Who offers first: the newcomer (it gets `joined` with the peers already
// there) builds a connection to each and offers; the others build a passive
// one when they hear of the newcomer (`peer-joined` or its first `signal`,
// whichever comes first) and answer. A passive link that hears no offer
// within a few seconds offers itself. Perfect negotiation handles every later
// renegotiation (ICE restarts from either side) without glare; starting
// one-sided avoids a rollback right at set-up, where Chromium can leave the
// rolled-back side's ICE agent idle.
//
// Nothing relies on message order (API Gateway runs one Lambda per frame,
// concurrently): room messages that arrive before our own `joined` or
// `resumed` are held and replayed after it; a peer that left is remembered,
// so its late `peer-joined` or `signal` cannot bring it back; each link
// drops stale descriptions and holds early candidates (see tincan/peer.js).
//
// Resume: when the socket drops, the client reconnects at once (first retry
// after 100-250 ms) and sends `resume` with the credential of its last
// `joined`/`resumed`; the server answers `resumed` and the peer connections
// carry on untouched, so audio never stops. Signals made while the socket was
// down wait in an outbox and go out after `resumed`. If the server refuses
// (`resume-failed`), the client rejoins the room from scratch.

import { AuthSession, TincanError } from './tincan/session.js';
import { SignalingChannel } from './tincan/signaling.js';
import { PeerLink } from './tincan/peer.js';
import { OPUS_DEFAULTS } from './tincan/opus.js';
import { protectionSettings } from './tincan/protection.js';
import { CallMonitor } from './tincan/monitor.js';
import { Devices } from './tincan/devices.js';
import { SfuLink } from './tincan/sfu.js';
import { AudioPlayback } from './tincan/playback.js';
import { Participant, ParticipantList } from './tincan/participants.js';

export { AuthSession, TincanError, SignalingChannel, PeerLink, SfuLink, Participant };
export { summarizeStats } from './tincan/stats.js';
export { tuneOpusSdp, OPUS_DEFAULTS } from './tincan/opus.js';
export { classifyQuality, QUALITY_THRESHOLDS } from './tincan/monitor.js';
export { ProtectionTracker, protectionSettings, PROTECTION_NAMES } from './tincan/protection.js';
export { precallCheck } from './tincan/precall.js';
export { jwtExpiry } from './tincan/session.js';

/**
 * @typedef {import('./tincan/peer.js').PeerInfo} PeerInfo
 * @typedef {import('./tincan/events.js').CallState} CallState
 * @typedef {import('./tincan/events.js').RoomMode} RoomMode
 * @typedef {import('./tincan/events.js').ErrorCode} ErrorCode
 * @typedef {import('./tincan/events.js').ServerErrorCode} ServerErrorCode
 * @typedef {import('./tincan/events.js').ClientErrorCode} ClientErrorCode
 * @typedef {import('./tincan/events.js').Joined} Joined
 * @typedef {import('./tincan/events.js').TincanEventMap} TincanEventMap
 * @typedef {import('./tincan/participants.js').ParticipantField} ParticipantField
 * @typedef {import('./tincan/participants.js').MediaPath} MediaPath
 * @typedef {import('./tincan/monitor.js').Quality} Quality
 */
/**
 * @template {keyof TincanEventMap} K
 * @typedef {import('./tincan/events.js').TincanListener<K>} TincanListener
 */
/**
 * @typedef {{
 *   baseUrl?: string,
 *   session?: AuthSession,
 *   storage?: Storage | null,
 *   wsPath?: string,
 *   pingIntervalMs?: number,
 *   joinTimeoutMs?: number,
 *   rtcConfig?: RTCConfiguration,
 *   resume?: boolean,
 *   opus?: import('./tincan/opus.js').OpusOptions,
 *   playAudio?: boolean,
 *   audioContainer?: HTMLElement | null,
 *   adaptProtection?: boolean,
 * }} ClientOptions
 *   `resume: false` rejoins from scratch after every drop (the behaviour
 *   before resume existed; kept for benchmarks). `opus`: `{fec, dtx, red,
 *   maxBitrateKbps}` (tincan/opus.js; default FEC and RED on, DTX off, no cap).
 *   `playAudio: false`: the client plays nothing (use `participant.stream`,
 *   or the `track`/`sfu-track` events). `audioContainer`: where the client's
 *   `<audio>` elements go (hide it); by default they stay off the DOM.
 *   `adaptProtection: false`: links keep the configured Opus whatever their
 *   loss (the levels are still measured and told; tincan/protection.js).
 *
 * @typedef {string | (() => string | Promise<string>)} JoinTokenSource
 *   A join token minted by an app's backend (docs/embedding.md), or a
 *   function that fetches a fresh one (called again when a socket must be
 *   reopened after the token expired or was refused).
 *
 * @typedef {{stream?: MediaStream | null, listenOnly?: boolean, muted?: boolean, joinToken?: JoinTokenSource}} JoinOptions
 *   `stream`: the microphone to send (default: the client opens one);
 *   `listenOnly`: no microphone at all, receive only; `muted`: join muted;
 *   `joinToken`: join with an app's join token instead of a Tincan account
 *   (no session needed; a listen-only token implies `listenOnly`).
 *
 * @typedef {{joinStartedAt: number | null, firstPacketMs: number | null, reconnects: number,
 *   resumes: number, rejoins: number, lastResumeMs: number | null, lastRejoinMs: number | null}} Metrics
 */

/** Room ids the server accepts (docs/protocol.md). */
export const ROOM_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A join token this close to its `exp` is fetched again before use. */
const JOIN_TOKEN_MARGIN_MS = 5_000;

/** @typedef {{room: string, exp: number, speak: boolean}} JoinTokenClaims */

/**
 * What a client needs from a join token's claims (read, not verified: the
 * server verifies it). `join-token-invalid` if it is not a join token.
 * @param {string} token
 * @returns {JoinTokenClaims}
 */
export function joinTokenClaims(token) {
  try {
    const part = String(token).split('.')[1] ?? '';
    const claims = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/')));
    if (claims.aud !== 'tincan-join' || typeof claims.room !== 'string' || typeof claims.exp !== 'number') throw new Error('claims');
    return { room: claims.room, exp: claims.exp, speak: claims.grants?.speak !== false };
  } catch {
    throw new TincanError('join-token-invalid', 'This is not a Tincan join token.');
  }
}

/** Server error codes that end a join attempt instead of being informational. */
const JOIN_ERRORS = new Set(['room-full', 'bad-request', 'too-large', 'store-unavailable', 'internal', 'join-token-room']);
/** Room messages that are held until our own `joined`/`resumed` arrives. */
const ROOM_MESSAGES = new Set(['peer-joined', 'peer-left', 'peer-muted', 'signal', 'room-mode', 'sfu-answer']);
/**
 * Make-before-break: once our SFU connection is up, the mesh links stay this
 * long, so peers that reach the SFU a moment after us are never unheard.
 */
const MESH_OVERLAP_MS = 1_500;
/** Retry a failed or refused SFU connection after this long (doubling, capped). */
const SFU_RETRY_MS = 1_000;
const SFU_RETRY_MAX_MS = 10_000;
/** Bounds on what is held: early room messages, unsent signals, ids of peers that left. */
const MAX_EARLY = 256;
const MAX_OUTBOX = 256;
const MAX_GONE = 1024;
/** Give up on a `join`/`resume` that got no answer within this long, and reconnect. */
const ANSWER_TIMEOUT_MS = 10_000;
/**
 * After `leave`, keep the socket open this long: the server runs frames
 * concurrently, and a close right behind the `leave` could be handled first
 * (a dropped socket, so the participant would stay for the resume grace).
 */
const LEAVE_LINGER_MS = 1_500;
/** Do not try to resume this close to the end of the server's grace. */
const RESUME_MARGIN_MS = 1_000;

/**
 * Events (all `CustomEvent`s; `TincanEventMap` in tincan/events.js types
 * each one's `detail`, and web/README.md describes them). The participant
 * events (`participant-joined`, `-left`, `-updated`, `speaking-changed`)
 * are the same in a mesh and on the SFU; `track`, `sfu-track` and
 * `active-speakers` are the lower layer underneath, for apps that play the
 * audio themselves (`playAudio: false`).
 */
export class TincanClient extends EventTarget {
  /** @type {string} */ #wsPath;
  /** @type {number} */ #joinTimeoutMs;
  /** @type {RTCConfiguration} */ #extraRtcConfig;
  /** @type {boolean} */ #resumeEnabled;
  /** @type {import('./tincan/opus.js').OpusOptions} */ #opus;
  /** Whether links raise and lower their loss protection (tincan/protection.js). */ #adapt = true;
  /** @type {CallState} */ #state = 'idle';
  /** @type {string | null} the room we want to be in (kept across reconnects) */ #room = null;
  /** @type {PeerInfo | null} */ #self = null;
  /** @type {Map<string, PeerLink>} one connection per remote peer */ #peers = new Map();
  /** @type {RoomMode} how the room's audio flows */ #mode = 'mesh';
  #sfuSlots = 3;
  /** @type {SfuLink | null} our connection to the room's media node, in SFU mode */ #sfu = null;
  #sfuRetryMs = SFU_RETRY_MS;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #sfuTimer = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #meshCloseTimer = undefined;
  /** @type {'direct' | 'relayed' | null} last media path told to the server */ #reportedMediaPath = null;
  /** @type {Map<string, PeerInfo>} everyone else in the room, connected or not yet */ #roster = new Map();
  /** @type {Set<string>} peers that left: their late messages are dropped */ #gone = new Set();
  /** @type {{token: string, graceSecs: number} | null} from the last `joined`/`resumed` */ #resumeCredential = null;
  /** @type {'joined' | 'resumed' | null} the answer this socket waits for */ #awaiting = null;
  /** @type {any[]} room messages that came before that answer */ #early = [];
  /** @type {Array<{to: string, data: unknown}>} signals made while the socket was not usable */ #outbox = [];
  /** @type {number | null} `performance.now()` of the drop we are recovering from */ #droppedAt = null;
  /** @type {MediaStream | null} */ #localStream = null;
  /** Whether `join()` opened the microphone (and so stops it on leave). */ #ownsStream = false;
  #listenOnly = false;
  /** @type {{source: JoinTokenSource, token: string, claims: JoinTokenClaims, refusals: number} | null} */
  #joinToken = null;
  #muted = false;
  /** @type {Metrics} */
  #metrics = {
    joinStartedAt: null,
    firstPacketMs: null,
    reconnects: 0,
    resumes: 0,
    rejoins: 0,
    lastResumeMs: null,
    lastRejoinMs: null,
  };
  /** @type {{resolve: (j: Joined) => void, reject: (e: Error) => void, timer: ReturnType<typeof setTimeout>} | null} */
  #pendingJoin = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #answerTimer = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #retryTimer = undefined;
  /** @type {CallMonitor} */ #monitor;
  /** @type {Devices} */ #devices;
  /** @type {AudioPlayback} */ #playback;
  /** @type {ParticipantList} */ #participants;
  /** @type {SignalingChannel} */ #channel;

  /**
   * @param {ClientOptions} [options]
   */
  constructor(options = {}) {
    super();
    this.baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? '').replace(/\/$/, '');
    this.session = options.session ?? new AuthSession({ baseUrl: this.baseUrl, storage: options.storage });
    this.#wsPath = options.wsPath ?? '/ws';
    this.#joinTimeoutMs = options.joinTimeoutMs ?? 15_000;
    this.#extraRtcConfig = options.rtcConfig ?? {};
    this.#resumeEnabled = options.resume !== false;
    this.#opus = { ...OPUS_DEFAULTS, ...options.opus };
    this.#adapt = options.adaptProtection !== false;
    /** @type {RTCIceServer[]} the room's ICE servers (TURN credentials renewed before they expire) */
    this.iceServers = [];

    /** Output device and microphone watch (tincan/devices.js). */
    this.#devices = new Devices({
      inCall: () => this.#state === 'joined' || this.#state === 'reconnecting',
      localStream: () => this.#localStream,
      useStream: (stream) => this.#useStream(stream, 'recovered'),
      emit: (type, detail) => this.#dispatch(type, detail),
    });
    /** Remote audio, played and measured (tincan/playback.js). */
    this.#playback = new AudioPlayback(
      {
        attach: (el) => this.#devices.attachAudio(el),
        detach: (el) => this.#devices.detachAudio(el),
        blocked: () => this.#emit('autoplay-blocked', {}),
      },
      { play: options.playAudio !== false, container: options.audioContainer ?? null },
    );
    /** Everyone else in the call, whatever the room's mode (tincan/participants.js). */
    this.#participants = new ParticipantList({
      emit: (type, detail) => this.#dispatch(type, detail),
      playback: this.#playback,
      meshLevel: (peerId) => this.#peers.get(peerId)?.audioLevel() ?? null,
    });
    /** Connection quality per peer and the active speaker (tincan/monitor.js). */
    this.#monitor = new CallMonitor({
      peers: this.#peers,
      selfId: () => this.#self?.peerId ?? null,
      muted: () => this.#muted,
      emit: (type, detail) => {
        if (type === 'connection-quality') {
          const { peerId, quality } = /** @type {TincanEventMap['connection-quality']} */ (detail);
          this.#participants.setQuality(peerId, quality);
        }
        this.#dispatch(type, detail);
      },
      tick: () => void this.#devices.checkMicrophone(),
      sample: (peerId, stats) => this.#participants.setMeshPath(peerId, stats.path),
      sfuLevels: () => this.#sfuLevels(),
      sfuSender: () => this.#sfu?.sender ?? null,
      sfuLink: () => this.#sfu,
      protect: (peerId, level) => this.#protect(peerId, level),
    });

    this.#channel = new SignalingChannel({
      url: (ctx) => this.#socketUrl(ctx),
      pingIntervalMs: options.pingIntervalMs ?? 60_000,
    });
    this.#channel.addEventListener('open', (e) => this.#onOpen(/** @type {CustomEvent} */ (e).detail));
    this.#channel.addEventListener('message', (e) => this.#onMessage(/** @type {CustomEvent} */ (e).detail));
    this.#channel.addEventListener('drop', (e) => this.#onDrop(/** @type {CustomEvent} */ (e).detail));
    this.#channel.addEventListener('fatal', (e) => this.#onFatal(/** @type {CustomEvent} */ (e).detail.error));
  }

  /**
   * Listens for a client event; `e.detail` is typed by the event's name
   * (`TincanEventMap`), and a name that is not an event does not compile.
   * @template {keyof TincanEventMap} K
   * @param {K} type
   * @param {TincanListener<K> | {handleEvent: TincanListener<K>} | null} listener
   * @param {boolean | AddEventListenerOptions} [options]
   * @returns {void}
   */
  addEventListener(type, listener, options) {
    super.addEventListener(type, /** @type {EventListener | null} */ (listener), options);
  }

  /**
   * @template {keyof TincanEventMap} K
   * @param {K} type
   * @param {TincanListener<K> | {handleEvent: TincanListener<K>} | null} listener
   * @param {boolean | EventListenerOptions} [options]
   * @returns {void}
   */
  removeEventListener(type, listener, options) {
    super.removeEventListener(type, /** @type {EventListener | null} */ (listener), options);
  }

  /**
   * Calls `fn` with each event's `detail`; returns a function that stops it.
   * @template {keyof TincanEventMap} K
   * @param {K} type
   * @param {(detail: TincanEventMap[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    /** @param {CustomEvent<TincanEventMap[K]>} e */
    const listener = (e) => fn(e.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /** @returns {CallState} */
  get state() {
    return this.#state;
  }
  /** The room we are in (or joining), else null. */
  get room() {
    return this.#room;
  }
  /** Ourselves as the room knows us, once joined. */
  get self() {
    return this.#self;
  }
  /** @returns {RoomMode} */
  get mode() {
    return this.#mode;
  }
  /** Whether our microphone is muted (`setMuted`). */
  get muted() {
    return this.#muted;
  }
  /** Joined with `listenOnly`: no microphone, receive only. */
  get listenOnly() {
    return this.#listenOnly;
  }
  /** The microphone we send, or null. */
  get localStream() {
    return this.#localStream;
  }
  /** @returns {ReadonlyMap<string, Participant>} everyone else in the call, by participant id */
  get participants() {
    return this.#participants.map;
  }
  /** @returns {ReadonlyMap<string, PeerInfo>} everyone else in the room, as the server lists them */
  get roster() {
    return this.#roster;
  }
  /** @returns {ReadonlyMap<string, PeerLink>} in a mesh, one connection per remote peer (lower layer) */
  get peers() {
    return this.#peers;
  }
  /** In SFU mode, our connection to the room's media node (lower layer), else null. */
  get sfu() {
    return this.#sfu;
  }
  /** In SFU mode, the quality of our connection to the node; null otherwise or before a verdict. */
  get sfuQuality() {
    return this.#sfu ? this.#participants.sfuQuality : null;
  }
  /** @returns {Readonly<Metrics>} join-to-first-packet, reconnects, resumes, rejoins */
  get metrics() {
    return this.#metrics;
  }
  /** The signaling socket (lower layer). */
  get channel() {
    return this.#channel;
  }
  /** The `<audio>` elements the client is playing remote audio in (none with `playAudio: false`). */
  get audioElements() {
    return this.#playback.playing;
  }

  /**
   * Joins `room`; resolves on `joined`. Without `stream` the client opens
   * the microphone itself (echo cancellation, noise suppression and gain
   * control on) and stops it on `leave()`; with `listenOnly` it opens none
   * and only receives. Rejects with a `TincanError` (`room-full`,
   * `bad-request`, `session-expired`, `timeout`, `mic-denied`, ...).
   * @param {string} room
   * @param {JoinOptions} [options]
   * @returns {Promise<Joined>}
   */
  async join(room, options = {}) {
    if (!ROOM_ID.test(room)) {
      throw new TincanError('bad-request', 'A room name is 1-64 letters, digits, "-" or "_".');
    }
    this.#joinToken = null;
    if (options.joinToken !== undefined) {
      const source = options.joinToken;
      const token = typeof source === 'function' ? await source() : source;
      this.#joinToken = { source, token, claims: joinTokenClaims(token), refusals: 0 };
      // A socket opened under another identity does not carry this one.
      if (this.#channel.state !== 'closed' && this.#channel.state !== 'idle') this.#channel.stop();
    }
    this.#listenOnly = options.listenOnly === true || this.#joinToken?.claims.speak === false;
    /** @type {MediaStream | null} */
    let stream = options.stream ?? null;
    if (this.#listenOnly) stream = null;
    else if (!stream && this.#ownsStream && this.#localStream?.getAudioTracks()[0]?.readyState === 'live') stream = this.#localStream;
    else if (!stream) stream = await openMicrophone();
    const owned = !this.#listenOnly && !options.stream;
    if (this.#ownsStream && !owned && this.#localStream !== stream) this.#localStream?.getTracks().forEach((t) => t.stop());
    this.#ownsStream = owned;
    if (options.muted !== undefined) this.#muted = options.muted;
    if (this.#listenOnly) this.#muted = true;
    this.#watchTrack(stream);
    this.#applyMute();
    this.#pendingJoin?.reject(new TincanError('superseded', 'Another join started.'));
    this.#room = room;
    this.#metrics.joinStartedAt = performance.now();
    this.#metrics.firstPacketMs = null;
    this.#setState('joining');
    const joined = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pendingJoin = null;
        this.#stop('idle');
        reject(new TincanError('timeout', 'The server did not answer the join in time.'));
      }, this.#joinTimeoutMs);
      this.#pendingJoin = { resolve, reject, timer };
    });
    if (this.#channel.state === 'open') this.#sendJoin();
    else this.#channel.start();
    return /** @type {Promise<Joined>} */ (joined);
  }

  /**
   * The last connection quality of a peer (`excellent`, `good`, `poor`,
   * `lost`), or undefined before its first verdict.
   * @param {string} peerId
   */
  connectionQuality(peerId) {
    return this.#monitor.quality.get(peerId);
  }

  /**
   * The loss protection of a link (tincan/protection.js): a mesh peer's, or
   * with `null` our link to the SFU; null before its first look.
   * @param {string | null} peerId
   */
  protection(peerId) {
    return this.#monitor.protection(peerId);
  }

  /**
   * Applies a link's new protection level (unless `adaptProtection: false`).
   * @param {string | null} peerId
   * @param {import('./tincan/protection.js').ProtectionLevel} level
   */
  async #protect(peerId, level) {
    const link = peerId === null ? this.#sfu : this.#peers.get(peerId);
    await link?.setProtection(protectionSettings(this.#adapt ? level : 0, this.#opus)).catch(() => {});
  }

  /**
   * In SFU mode, the level (0..1) the browser hears from `peerId` on the
   * slot the node put them in; 0 when they are in no slot.
   * @param {string} peerId
   */
  sfuLevel(peerId) {
    return this.sfuLevels().get(peerId) ?? 0;
  }

  /**
   * In SFU mode, every participant in a slot with the level (0..1) the
   * browser hears on that slot: one read of the slots for a whole list.
   * @returns {Map<string, number>}
   */
  sfuLevels() {
    return new Map(this.#sfuLevels());
  }

  /**
   * Plays remote audio again after the browser's autoplay policy blocked it
   * (`autoplay-blocked`); call it from a click or key handler.
   */
  resumeAudio() {
    this.#playback.retry();
  }

  /** The active speaker's peer id (ours when it is us), or null. */
  get activeSpeaker() {
    return this.#monitor.activeSpeaker;
  }

  /** Leaves the room and closes the signaling connection. */
  leave() {
    const sent = this.#channel.state === 'open' && this.#channel.send({ action: 'leave' });
    this.#stop('left', sent ? LEAVE_LINGER_MS : 0);
  }

  /**
   * Mutes or unmutes the microphone (the track keeps running, so unmuting is instant).
   * @param {boolean} muted
   */
  setMuted(muted) {
    // Listen-only: there is no microphone to unmute.
    if (this.#listenOnly && !muted) return;
    this.#muted = muted;
    this.#applyMute();
    if (this.#state === 'joined') this.#channel.send({ action: 'mute', muted });
    this.#emit('self-muted', { muted });
  }

  /**
   * Switches the microphone (e.g. another device) on every peer connection.
   * @param {MediaStream} stream
   */
  async setLocalStream(stream) {
    if (this.#listenOnly) throw new TincanError('not-supported', 'A listen-only participant sends no microphone.');
    const owned = this.#ownsStream ? this.#localStream : null;
    this.#ownsStream = false;
    await this.#useStream(stream, 'switched');
    if (owned && owned !== stream) owned.getTracks().forEach((t) => t.stop());
  }

  /**
   * Plays remote audio on the chosen output device: the element follows
   * every later `setOutputDevice`. Returns the element.
   * @template {HTMLMediaElement} E
   * @param {E} element
   * @returns {E}
   */
  attachAudio(element) {
    return this.#devices.attachAudio(element);
  }

  /** @param {HTMLMediaElement} element */
  detachAudio(element) {
    this.#devices.detachAudio(element);
  }

  /**
   * Sends remote audio to another output device (`setSinkId`; a `deviceId`
   * from `enumerateDevices()` of kind `audiooutput`, '' for the default) on
   * every attached element, now and later. Rejects with `not-supported`
   * where the browser cannot choose.
   * @param {string} deviceId
   */
  setOutputDevice(deviceId) {
    return this.#devices.setOutputDevice(deviceId);
  }

  /** The output device of attached elements ('' = default). */
  get outputDeviceId() {
    return this.#devices.outputDeviceId;
  }

  /**
   * @param {MediaStream} stream
   * @param {'switched' | 'recovered'} reason
   */
  async #useStream(stream, reason) {
    this.#watchTrack(stream);
    this.#applyMute();
    const track = stream.getAudioTracks()[0] ?? null;
    const links = [...this.#peers.values(), ...(this.#sfu ? [this.#sfu] : [])];
    await Promise.all(links.map((link) => link.replaceTrack(track)));
    const settings = track?.getSettings() ?? {};
    this.#emit('microphone-changed', { stream, deviceId: settings.deviceId ?? null, label: track?.label ?? '', reason });
  }

  /** @param {MediaStream | null} stream */
  #watchTrack(stream) {
    this.#devices.watch(this.#localStream, stream);
    this.#localStream = stream;
  }

  /** @param {{reconnect?: boolean, failedBeforeOpen?: boolean}} ctx */
  async #socketUrl(ctx) {
    // A socket refused before opening is most often an expired token (the
    // upgrade answers 401, which a browser cannot see): refresh and retry.
    const token = this.#joinToken
      ? await this.#currentJoinToken(this.#joinToken, ctx)
      : await this.session.accessToken({ force: Boolean(ctx.failedBeforeOpen) });
    const url = new URL(this.#wsPath, this.baseUrl || globalThis.location.href);
    // An http(s) URL names the same place as ws(s); a ws(s) URL stays as is.
    if (url.protocol === 'https:') url.protocol = 'wss:';
    else if (url.protocol === 'http:') url.protocol = 'ws:';
    url.searchParams.set('token', token);
    return url.toString();
  }

  /**
   * The join token for the next socket. A browser cannot see the 401 of a
   * refused upgrade, only a socket that never opened: a token that fails so
   * before any socket opened (twice, if it can be fetched again) is taken
   * as refused, and an expired one is fetched again or, if it cannot be,
   * ends the call with `join-token-expired`.
   * @param {{source: JoinTokenSource, token: string, claims: JoinTokenClaims, refusals: number}} held
   * @param {{failedBeforeOpen?: boolean}} ctx
   */
  async #currentJoinToken(held, ctx) {
    const refetchable = typeof held.source === 'function';
    const expired = () => held.claims.exp * 1000 <= Date.now() + JOIN_TOKEN_MARGIN_MS;
    if (!refetchable && expired()) {
      throw new TincanError('join-token-expired', 'The join token has expired; ask the app for a new one.');
    }
    if (ctx.failedBeforeOpen && !this.#channel.everOpened) {
      held.refusals += 1;
      if (held.refusals >= (refetchable ? 2 : 1)) {
        throw new TincanError('join-token-refused', 'The server refused the join token (forged, expired, or of an unknown key).');
      }
    }
    if (refetchable && (ctx.failedBeforeOpen || expired())) {
      held.token = await /** @type {() => string | Promise<string>} */ (held.source)();
      held.claims = joinTokenClaims(held.token);
    }
    return held.token;
  }

  /** @param {{reconnect: boolean}} detail */
  #onOpen(detail) {
    if (detail.reconnect) {
      this.#metrics.reconnects += 1;
      this.#emit('reconnected', {});
    }
    if (!this.#room) return;
    if (this.#canResume()) this.#sendResume();
    else this.#sendJoin();
  }

  #canResume() {
    if (!this.#resumeEnabled || !this.#self || !this.#resumeCredential || this.#droppedAt === null) return false;
    const graceMs = this.#resumeCredential.graceSecs * 1000;
    return performance.now() - this.#droppedAt < graceMs - RESUME_MARGIN_MS;
  }

  #sendJoin() {
    this.#await('joined');
    this.#channel.send({ action: 'join', room: /** @type {string} */ (this.#room) });
  }

  #sendResume() {
    const credential = /** @type {{token: string}} */ (this.#resumeCredential);
    this.#await('resumed');
    this.#channel.send({ action: 'resume', peerId: /** @type {PeerInfo} */ (this.#self).peerId, token: credential.token });
  }

  /**
   * Holds room messages until `answer` comes; a socket that never answers is replaced.
   * @param {'joined' | 'resumed'} answer
   */
  #await(answer) {
    this.#awaiting = answer;
    clearTimeout(this.#answerTimer);
    this.#answerTimer = setTimeout(() => {
      if (this.#awaiting === answer) this.#channel.reconnectNow();
    }, ANSWER_TIMEOUT_MS);
  }

  #answered() {
    this.#awaiting = null;
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#retryTimer);
  }

  /** @param {any} msg */
  #onMessage(msg) {
    const type = msg?.type;
    if (type === 'joined') return this.#onJoined(msg);
    if (type === 'resumed') return this.#onResumed(msg);
    if (type === 'error') return this.#onServerError(msg);
    if (!ROOM_MESSAGES.has(type) || !this.#room) return; // pong and anything newer than this client
    if (this.#awaiting || !this.#self) {
      this.#early.push(msg);
      this.#early.splice(0, Math.max(0, this.#early.length - MAX_EARLY));
      return;
    }
    this.#onRoomMessage(msg);
  }

  /** @param {any} msg a room message, in a room whose `joined`/`resumed` we have */
  #onRoomMessage(msg) {
    switch (msg.type) {
      case 'room-mode':
        if (msg.mode === 'sfu') this.#enterSfu(msg.sfu?.slots);
        return;
      case 'sfu-answer':
        if (typeof msg.sdp === 'string') {
          this.#sfu?.handleAnswer(msg.sdp).catch((error) => this.#sfuFailed(error));
        }
        return;
      case 'peer-joined': {
        const peer = msg.peer;
        if (typeof peer?.peerId !== 'string' || this.#gone.has(peer.peerId) || peer.peerId === this.#self?.peerId) return;
        const isNew = !this.#roster.has(peer.peerId);
        this.#roster.set(peer.peerId, { ...peer });
        const link = this.#peers.get(peer.peerId);
        // Its offer may have come first and built the link already. On the
        // SFU, a newcomer is only listed: its audio comes through the node.
        if (link) link.peer = { ...peer };
        else if (this.#mode === 'mesh') this.#addPeer(peer, { passive: true });
        this.#participants.upsert(peer);
        if (isNew) this.#emit('peer-joined', { peer });
        return;
      }
      case 'peer-left':
        return this.#peerGone(msg.peerId);
      case 'peer-muted': {
        const muted = Boolean(msg.muted);
        const known = this.#roster.get(msg.peerId);
        if (known) known.muted = muted;
        const link = this.#peers.get(msg.peerId);
        if (link) link.peer.muted = muted;
        this.#participants.setMuted(msg.peerId, muted);
        return this.#emit('peer-muted', { peerId: msg.peerId, muted });
      }
      case 'signal': {
        const from = msg.from;
        if (typeof from !== 'string' || !msg.data || typeof msg.data !== 'object') return;
        if (this.#gone.has(from) || from === this.#self?.peerId) return;
        // Addressed to a participant we no longer are (we rejoined meanwhile).
        if (typeof msg.to === 'string' && msg.to !== this.#self?.peerId) return;
        // On the SFU, only the mesh links still open during the switch talk.
        if (this.#mode === 'sfu') {
          this.#peers.get(from)?.handleSignal(msg.data);
          return;
        }
        // The first word from a newcomer may overtake its `peer-joined`.
        const link =
          this.#peers.get(from) ??
          this.#addPeer(this.#roster.get(from) ?? { peerId: from, userId: '', displayName: 'Someone', muted: false }, {
            passive: true,
          });
        link.handleSignal(msg.data);
        return;
      }
      default:
    }
  }

  /**
   * A peer left (or is no longer in the room): forget it for good.
   * @param {string} peerId
   */
  #peerGone(peerId) {
    if (typeof peerId !== 'string') return;
    this.#gone.add(peerId);
    if (this.#gone.size > MAX_GONE) this.#gone.delete(/** @type {string} */ (this.#gone.values().next().value));
    const peer = this.#roster.get(peerId) ?? this.#peers.get(peerId)?.peer ?? null;
    const known = this.#roster.delete(peerId) || this.#peers.has(peerId);
    this.#removePeer(peerId);
    this.#participants.remove(peerId);
    this.#outbox = this.#outbox.filter((m) => m.to !== peerId);
    if (known) this.#emit('peer-left', { peerId, peer });
  }

  /**
   * Tells the server, for call history, whether our media goes direct or
   * through a relay (relayed if any peer connection is), when that changes.
   */
  async #reportMediaPath() {
    // The selected pair settles a moment after `connected`.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const paths = await Promise.all([...this.#peers.values()].map((link) => link.stats().then((s) => s.path, () => null)));
    const known = paths.filter(Boolean);
    if (known.length === 0) return;
    const path = known.includes('relayed') ? 'relayed' : 'direct';
    if (path === this.#reportedMediaPath) return;
    this.#reportedMediaPath = path;
    this.#channel.send({ action: 'media', path });
  }

  /** @param {any} msg */
  #takeCredential(msg) {
    const resume = msg.resume;
    this.#resumeCredential =
      resume && typeof resume.token === 'string'
        ? { token: resume.token, graceSecs: Number(resume.graceSecs) > 0 ? Number(resume.graceSecs) : 30 }
        : null;
  }

  /** @param {any} msg */
  #onJoined(msg) {
    if (!this.#room || !msg.self) return;
    const rejoin = this.#droppedAt !== null;
    this.#answered();
    this.#reportedMediaPath = null;
    // A new participant: every old connection and unsent signal is stale.
    for (const peerId of [...this.#peers.keys()]) this.#removePeer(peerId);
    this.#outbox = [];
    this.#self = msg.self;
    this.#room = msg.room;
    this.#takeCredential(msg);
    this.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
    this.#roster = new Map();
    // A new participant: its SFU connection, if any, is new too.
    this.#closeSfu();
    this.#mode = msg.mode === 'sfu' ? 'sfu' : 'mesh';
    for (const peer of msg.peers ?? []) {
      if (typeof peer?.peerId !== 'string') continue;
      this.#gone.delete(peer.peerId);
      this.#roster.set(peer.peerId, { ...peer });
      if (this.#mode === 'mesh') this.#addPeer(peer, { passive: false });
    }
    // Who we knew as the participant we were is restated by this list.
    for (const id of [...this.#participants.map.keys()]) if (!this.#roster.has(id)) this.#participants.remove(id);
    this.#participants.setMode(this.#mode);
    for (const peer of this.#roster.values()) this.#participants.upsert(peer);
    this.#emit('mode', { mode: this.#mode });
    if (this.#mode === 'sfu') this.#startSfu(msg.sfu?.slots);
    if (this.#muted && !msg.self.muted) this.#channel.send({ action: 'mute', muted: true });
    if (rejoin) {
      this.#metrics.rejoins += 1;
      this.#metrics.lastRejoinMs = performance.now() - /** @type {number} */ (this.#droppedAt);
    }
    this.#droppedAt = null;
    this.#setState('joined');
    if (this.#pendingJoin) {
      clearTimeout(this.#pendingJoin.timer);
      this.#pendingJoin.resolve(msg);
      this.#pendingJoin = null;
    }
    this.#emit('joined', { ...msg, rejoin });
    this.#replayEarly();
  }

  /**
   * The socket is back and we are still the same participant: keep every
   * connection to a peer still listed, drop the rest, and carry on.
   * @param {any} msg
   */
  #onResumed(msg) {
    if (!this.#room || this.#awaiting !== 'resumed' || !msg.self) return;
    this.#answered();
    this.#self = msg.self;
    this.#takeCredential(msg);
    if (Array.isArray(msg.iceServers)) this.iceServers = msg.iceServers;
    /** @type {Map<string, PeerInfo>} */
    const listed = new Map();
    for (const peer of msg.peers ?? []) if (typeof peer?.peerId === 'string') listed.set(peer.peerId, peer);
    for (const peerId of new Set([...this.#roster.keys(), ...this.#peers.keys()])) {
      if (!listed.has(peerId)) this.#peerGone(peerId);
    }
    for (const peer of listed.values()) {
      this.#gone.delete(peer.peerId);
      const before = this.#roster.get(peer.peerId);
      this.#roster.set(peer.peerId, { ...peer });
      const link = this.#peers.get(peer.peerId);
      if (link) link.peer = { ...peer };
      // Someone who came while we were away: their offer is among the kept
      // signals; a passive link answers it (or offers, if it never comes).
      else if (this.#mode === 'mesh' && msg.mode !== 'sfu') this.#addPeer(peer, { passive: true });
      this.#participants.upsert(peer);
      if (!before) this.#emit('peer-joined', { peer });
      else if (Boolean(before.muted) !== Boolean(peer.muted)) this.#emit('peer-muted', { peerId: peer.peerId, muted: Boolean(peer.muted) });
    }
    if (Boolean(msg.self.muted) !== this.#muted) this.#channel.send({ action: 'mute', muted: this.#muted });
    const outbox = this.#outbox.filter((m) => listed.has(m.to));
    this.#outbox = [];
    for (const m of outbox) this.#channel.send({ action: 'signal', to: m.to, data: m.data });
    const ms = this.#droppedAt === null ? null : performance.now() - this.#droppedAt;
    this.#droppedAt = null;
    this.#metrics.resumes += 1;
    this.#metrics.lastResumeMs = ms;
    this.#setState('joined');
    // The room moved to the SFU while we were away; our SFU connection
    // itself never depended on the socket.
    if (msg.mode === 'sfu') this.#enterSfu(msg.sfu?.slots);
    this.#emit('resumed', { ...msg, ms });
    this.#replayEarly();
  }

  #replayEarly() {
    const early = this.#early;
    this.#early = [];
    for (const msg of early) this.#onRoomMessage(msg);
  }

  /** Resume refused: we are no longer in the room; join it again from scratch. */
  #rejoin() {
    for (const peerId of [...this.#peers.keys()]) this.#removePeer(peerId);
    this.#closeSfu();
    this.#roster.clear();
    this.#outbox = [];
    this.#early = [];
    this.#resumeCredential = null;
    this.#sendJoin();
  }

  /** @param {{code: string, message: string, retryAfterMs?: number}} msg */
  #onServerError(msg) {
    // A code newer than this client still reaches the app as it came.
    const code = /** @type {ErrorCode} */ (String(msg.code ?? 'internal'));
    const message = String(msg.message ?? code);
    if (code === 'rate-limited') {
      const retryAfterMs = Math.min(30_000, Math.max(100, Number(msg.retryAfterMs) || 1000));
      // A refused join or resume is sent again once allowed.
      const awaited = this.#awaiting;
      if (awaited) {
        clearTimeout(this.#answerTimer);
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => {
          if (this.#awaiting !== awaited || this.#channel.state !== 'open') return;
          if (awaited === 'resumed' && this.#canResume()) this.#sendResume();
          else this.#sendJoin();
        }, retryAfterMs);
      }
      this.#emit('error', { code, message, fatal: false, retryAfterMs });
      return;
    }
    if (this.#awaiting === 'resumed') {
      // Nothing else is in flight on this socket: the resume was refused
      // (or this server does not know `resume`); rejoin from scratch.
      this.#emit('resume-failed', { code, message });
      this.#rejoin();
      return;
    }
    if (this.#mode === 'sfu' && this.#sfu && !this.#sfu.answered && (code === 'sfu-unavailable' || code === 'room-full')) {
      // The node could not take our offer (yet): try again shortly.
      this.#sfuFailed(new Error(`${code}: ${message}`));
      this.#emit('error', { code, message, fatal: false });
      return;
    }
    const joining = this.#state === 'joining' || this.#awaiting === 'joined';
    if (joining && JOIN_ERRORS.has(code)) {
      const error = new TincanError(code, message);
      if (this.#pendingJoin) {
        clearTimeout(this.#pendingJoin.timer);
        this.#pendingJoin.reject(error);
        this.#pendingJoin = null;
      }
      this.#stop('idle');
      this.#emit('error', { code, message, fatal: true });
      return;
    }
    this.#emit('error', { code, message, fatal: false });
  }

  /** @param {{code: number, attempt: number, delayMs: number}} detail */
  #onDrop(detail) {
    this.#awaiting = null;
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#retryTimer);
    // Whatever was held belonged to the socket that is gone.
    this.#early = [];
    if (this.#state === 'joined' || this.#state === 'reconnecting') {
      if (this.#droppedAt === null) this.#droppedAt = performance.now();
      this.#setState('reconnecting');
      this.#emit('reconnecting', { attempt: detail.attempt, delayMs: detail.delayMs, code: detail.code });
    }
  }

  /** @param {unknown} error */
  #onFatal(error) {
    const e = error instanceof TincanError ? error : new TincanError('internal', String(error));
    if (this.#pendingJoin) {
      clearTimeout(this.#pendingJoin.timer);
      this.#pendingJoin.reject(e);
      this.#pendingJoin = null;
    }
    this.#stop('idle');
    this.#emit('error', { code: e.code, message: e.message, fatal: true });
  }

  /**
   * Sends a signal now, or keeps it for after `resumed` if the socket is not usable.
   * @param {string} to
   * @param {unknown} data
   */
  #sendSignal(to, data) {
    if (this.#channel.state === 'open' && !this.#awaiting && this.#channel.send({ action: 'signal', to, data })) return;
    this.#outbox.push({ to, data });
    this.#outbox.splice(0, Math.max(0, this.#outbox.length - MAX_OUTBOX));
  }

  /**
   * @param {PeerInfo} peer
   * @param {{passive: boolean}} options  passive: wait for the peer's offer
   * @returns {PeerLink}
   */
  #addPeer(peer, options) {
    this.#removePeer(peer.peerId);
    const self = /** @type {PeerInfo} */ (this.#self);
    const peerId = peer.peerId;
    const link = new PeerLink({
      selfId: self.peerId,
      peer,
      rtcConfig: { ...this.#extraRtcConfig, iceServers: [...this.iceServers, ...(this.#extraRtcConfig.iceServers ?? [])] },
      localStream: this.#localStream,
      sendSignal: (data) => {
        if (this.#peers.get(peerId) === link) this.#sendSignal(peerId, data);
      },
      iceServers: () => this.#currentIceServers(),
      passive: options.passive,
      opus: this.#opus,
    });
    link.addEventListener('track', (e) => {
      const stream = /** @type {CustomEvent<{stream: MediaStream}>} */ (e).detail.stream;
      if (this.#peers.get(peerId) === link) this.#participants.setMeshStream(peerId, stream);
      this.#emit('track', { peerId, stream });
    });
    link.addEventListener('state', (e) => {
      const detail = /** @type {CustomEvent} */ (e).detail;
      this.#emit('peer-state', { peerId, ...detail });
      if (detail.connectionState === 'connected') this.#reportMediaPath();
    });
    link.addEventListener('ice-restart', (e) => this.#emit('ice-restart', { peerId, .../** @type {CustomEvent} */ (e).detail }));
    link.addEventListener('error', (e) => {
      const error = /** @type {CustomEvent} */ (e).detail.error;
      this.#emit('error', { code: 'webrtc', message: `${link.peer.displayName}: ${error?.message ?? error}`, fatal: false });
    });
    link.addEventListener('stale', (e) => {
      console.debug('tincan: dropped a stale signal from', link.peer.displayName, /** @type {CustomEvent} */ (e).detail.reason);
    });
    link.addEventListener('remote-restarted', (e) => {
      // The peer built a new connection to us: follow with a new one of ours.
      if (this.#peers.get(peerId) !== link) return;
      const data = /** @type {CustomEvent} */ (e).detail.data;
      const held = link.takeHeldCandidates();
      const isOffer = data.description?.type === 'offer';
      const fresh = this.#addPeer(link.peer, { passive: isOffer });
      fresh.holdCandidates(held);
      if (isOffer) fresh.handleSignal(data);
    });
    link.addEventListener('first-packet', (e) => {
      const { at, sinceCreatedMs } = /** @type {CustomEvent} */ (e).detail;
      const ms = this.#metrics.joinStartedAt === null ? null : at - this.#metrics.joinStartedAt;
      if (ms !== null && this.#metrics.firstPacketMs === null) this.#metrics.firstPacketMs = ms;
      this.#emit('first-packet', { peerId, ms, sinceLinkMs: sinceCreatedMs });
    });
    this.#peers.set(peerId, link);
    return link;
  }

  /** @param {string} peerId */
  #removePeer(peerId) {
    const link = this.#peers.get(peerId);
    if (!link) return;
    this.#peers.delete(peerId);
    this.#monitor.forget(peerId);
    this.#participants.setMeshStream(peerId, null);
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

  /**
   * @param {CallState} next
   * @param {number} [lingerMs] keep the socket open this long (after a `leave`)
   */
  #stop(next, lingerMs = 0) {
    this.#channel.stop({ lingerMs });
    for (const peerId of [...this.#peers.keys()]) this.#removePeer(peerId);
    this.#closeSfu();
    this.#mode = 'mesh';
    this.#roster.clear();
    this.#participants.stop();
    this.#gone.clear();
    this.#self = null;
    this.#resumeCredential = null;
    this.#awaiting = null;
    this.#early = [];
    this.#outbox = [];
    this.#droppedAt = null;
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#retryTimer);
    if (next === 'left' || next === 'idle') {
      this.#room = null;
      if (this.#ownsStream) {
        this.#localStream?.getTracks().forEach((t) => t.stop());
        this.#watchTrack(null);
        this.#ownsStream = false;
      }
    }
    if (this.#pendingJoin) {
      clearTimeout(this.#pendingJoin.timer);
      this.#pendingJoin.reject(new TincanError('left', 'Left before the join finished.'));
      this.#pendingJoin = null;
    }
    this.#setState(next);
  }

  /**
   * The room moved to the SFU: connect to it, then close the mesh links
   * (make-before-break). A repeated `room-mode` is a no-op.
   * @param {unknown} slots
   */
  #enterSfu(slots) {
    if (this.#mode === 'sfu' && this.#sfu) return;
    this.#mode = 'sfu';
    this.#participants.setMode('sfu');
    this.#emit('mode', { mode: 'sfu' });
    this.#startSfu(slots);
  }

  /** @param {unknown} [slots] */
  #startSfu(slots) {
    if (Number(slots) > 0) this.#sfuSlots = Number(slots);
    this.#closeSfu();
    if (!this.#self) return;
    const link = new SfuLink({
      rtcConfig: { ...this.#extraRtcConfig, iceServers: [...this.iceServers, ...(this.#extraRtcConfig.iceServers ?? [])] },
      localStream: this.#localStream,
      slots: this.#sfuSlots,
      listenOnly: this.#listenOnly,
      opus: this.#opus,
      sendOffer: (sdp) => {
        if (this.#sfu !== link) return;
        if (!this.#channel.send({ action: 'sfu-offer', sdp })) this.#sfuFailed(new Error('signaling is down'));
      },
    });
    this.#sfu = link;
    this.#participants.setSlotStreams(link.streams);
    link.addEventListener('track', (e) => this.#dispatch('sfu-track', /** @type {CustomEvent} */ (e).detail));
    link.addEventListener('active-speakers', (e) => {
      const detail = /** @type {CustomEvent<{slots: import('./tincan/sfu.js').SlotSpeaker[]}>} */ (e).detail;
      if (this.#sfu === link) this.#participants.setSlots(detail.slots);
      this.#emit('active-speakers', detail);
    });
    link.addEventListener('state', (e) => this.#dispatch('sfu-state', /** @type {CustomEvent} */ (e).detail));
    link.addEventListener('connected', () => {
      if (this.#sfu !== link) return;
      link.answered = true;
      this.#sfuRetryMs = SFU_RETRY_MS;
      clearTimeout(this.#meshCloseTimer);
      this.#meshCloseTimer = setTimeout(() => {
        if (this.#sfu !== link || this.#mode !== 'sfu') return;
        for (const peerId of [...this.#peers.keys()]) this.#removePeer(peerId);
      }, this.#peers.size > 0 ? MESH_OVERLAP_MS : 0);
    });
    link.addEventListener('first-packet', (e) => {
      const { at } = /** @type {CustomEvent} */ (e).detail;
      const ms = this.#metrics.joinStartedAt === null ? null : at - this.#metrics.joinStartedAt;
      if (ms !== null && this.#metrics.firstPacketMs === null) this.#metrics.firstPacketMs = ms;
      this.#emit('first-packet', { peerId: null, ms, sinceLinkMs: at - link.createdAt });
    });
    link.addEventListener('failed', () => this.#sfuFailed(new Error('the SFU connection failed')));
    link.start().catch((error) => this.#sfuFailed(error));
  }

  /** @param {unknown} error */
  #sfuFailed(error) {
    if (this.#mode !== 'sfu' || !this.#sfu) return;
    console.warn('tincan: SFU connection:', error);
    this.#closeSfu();
    const delay = this.#sfuRetryMs;
    this.#sfuRetryMs = Math.min(SFU_RETRY_MAX_MS, this.#sfuRetryMs * 2);
    this.#sfuTimer = setTimeout(() => {
      if (this.#mode === 'sfu' && !this.#sfu && this.#self) this.#startSfu();
    }, delay);
  }

  #closeSfu() {
    clearTimeout(this.#sfuTimer);
    clearTimeout(this.#meshCloseTimer);
    const link = this.#sfu;
    this.#sfu = null;
    if (link) {
      link.close();
      this.#participants.setSlotStreams(null);
    }
  }

  /** Each participant in a slot, with the level the browser hears on it. */
  #sfuLevels() {
    if (!this.#sfu) return [];
    /** @type {Array<[string, number]>} */
    const out = [];
    for (const s of this.#sfu.speakers) {
      if (s && s.peerId !== this.#self?.peerId) out.push([s.peerId, this.#playback.level(`slot:${s.slot}`)]);
    }
    return out;
  }

  #applyMute() {
    for (const track of this.#localStream?.getAudioTracks() ?? []) track.enabled = !this.#muted;
  }

  /** @param {CallState} state */
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    if (state === 'joined') {
      this.#monitor.start();
      this.#participants.start();
    } else if (state === 'left' || state === 'idle') {
      this.#monitor.stop();
      this.#participants.stop();
    }
    this.#emit('state', { state });
  }

  /**
   * @template {keyof TincanEventMap} K
   * @param {K} type
   * @param {TincanEventMap[K]} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /**
   * For the helpers (monitor, devices, participants), whose events are typed
   * in the map but not checked at their call sites.
   * @param {string} type
   * @param {any} detail
   */
  #dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * Opens the default microphone for speech, with a stable error code on failure.
 * @returns {Promise<MediaStream>}
 */
async function openMicrophone() {
  if (!globalThis.navigator?.mediaDevices?.getUserMedia) {
    throw new TincanError('mic-unsupported', 'This browser cannot capture audio here (a secure https:// page is needed).');
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (error) {
    const name = /** @type {any} */ (error)?.name;
    /** @type {ErrorCode} */
    const code =
      name === 'NotAllowedError' || name === 'SecurityError'
        ? 'mic-denied'
        : name === 'NotFoundError' || name === 'OverconstrainedError'
          ? 'mic-missing'
          : name === 'TypeError'
            ? 'mic-unsupported'
            : 'mic-busy';
    throw new TincanError(code, `The microphone could not be opened: ${/** @type {any} */ (error)?.message ?? error}`, { cause: error });
  }
}
