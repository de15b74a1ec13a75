// The client's types that a TypeScript (or checked JSDoc) app relies on:
// the event map (event name -> `detail`), error codes, room modes and call
// states. Types only: this module exports no values.

/**
 * @typedef {import('./peer.js').PeerInfo} PeerInfo
 * @typedef {import('./participants.js').Participant} Participant
 * @typedef {import('./participants.js').ParticipantField} ParticipantField
 * @typedef {import('./participants.js').SlotSpeaker} SlotSpeaker
 * @typedef {import('./participants.js').MediaPath} MediaPath
 * @typedef {import('./monitor.js').Quality} Quality
 * @typedef {import('./protection.js').Protection} Protection
 * @typedef {import('./protection.js').ProtectionLevel} ProtectionLevel
 */

/**
 * Where a call is: `idle` before `join()` (and after a failed one),
 * `reconnecting` while the socket is down and the call goes on.
 * @typedef {'idle' | 'joining' | 'joined' | 'reconnecting' | 'left'} CallState
 */

/**
 * How the room's audio flows: peer to peer, or through its media node's SFU.
 * @typedef {'mesh' | 'sfu'} RoomMode
 */

/**
 * Codes the server sends (docs/protocol.md, docs/sfu.md, the HTTP API).
 * @typedef {'bad-request' | 'unknown-action' | 'too-large' | 'not-in-room' | 'room-full' | 'internal'
 *   | 'store-unavailable' | 'resume-failed' | 'rate-limited' | 'not-sfu' | 'sfu-unavailable' | 'bad-sdp'
 *   | 'draining' | 'invalid-credentials' | 'username-taken' | 'invalid-request' | 'unauthorized' | 'busy'
 *   | 'join-token-room' | 'listen-only' | `http-${number}`} ServerErrorCode
 */

/**
 * Codes the client makes itself: `network` (server unreachable), `timeout`,
 * `left` (left before the join finished), `superseded` (another join
 * started), `session-expired` (sign in again), `not-supported` (no output
 * device choice), `webrtc` (a peer connection error), `microphone-lost` (no
 * microphone to switch to), the microphone's own (`join()` opening it):
 * `mic-denied`, `mic-missing`, `mic-busy`, `mic-unsupported`, and a join
 * token's: `join-token-invalid` (not a join token), `join-token-expired`
 * (past its `exp`, and no way to get a new one), `join-token-refused` (the
 * server would not open a socket with it: forged, expired, or of an
 * unknown key).
 * @typedef {'network' | 'timeout' | 'left' | 'superseded' | 'session-expired' | 'not-supported' | 'webrtc'
 *   | 'microphone-lost' | 'mic-denied' | 'mic-missing' | 'mic-busy' | 'mic-unsupported'
 *   | 'join-token-invalid' | 'join-token-expired' | 'join-token-refused'} ClientErrorCode
 */

/** @typedef {ServerErrorCode | ClientErrorCode} ErrorCode */

/**
 * What `join()` resolves to and `joined` carries.
 * @typedef {{room: string, self: PeerInfo, peers: PeerInfo[], iceServers: RTCIceServer[], mode?: RoomMode,
 *   resume?: {token: string, graceSecs: number}}} Joined
 */

/**
 * Every event of `TincanClient`, by name, with its `detail`.
 * @typedef {{
 *   'state': {state: CallState},
 *   'joined': Joined & {rejoin: boolean},
 *   'resumed': Joined & {ms: number | null},
 *   'resume-failed': {code: ErrorCode, message: string},
 *   'participant-joined': {participant: Participant},
 *   'participant-left': {participant: Participant},
 *   'participant-updated': {participant: Participant, changed: ParticipantField[]},
 *   'speaking-changed': {participant: Participant, speaking: boolean},
 *   'autoplay-blocked': {},
 *   'peer-joined': {peer: PeerInfo},
 *   'peer-left': {peerId: string, peer: PeerInfo | null},
 *   'peer-muted': {peerId: string, muted: boolean},
 *   'track': {peerId: string, stream: MediaStream},
 *   'sfu-track': {slot: number, stream: MediaStream},
 *   'active-speakers': {slots: SlotSpeaker[]},
 *   'active-speaker': {peerId: string | null, level: number, self: boolean},
 *   'peer-state': {peerId: string, connectionState: RTCPeerConnectionState, iceConnectionState: RTCIceConnectionState},
 *   'sfu-state': {connectionState: RTCPeerConnectionState, iceConnectionState: RTCIceConnectionState},
 *   'ice-restart': {peerId: string, count: number},
 *   'first-packet': {peerId: string | null, ms: number | null, sinceLinkMs: number},
 *   'reconnecting': {attempt: number, delayMs: number, code: number},
 *   'reconnected': {},
 *   'self-muted': {muted: boolean},
 *   'connection-quality': {peerId: string | null, quality: Quality, rttMs: number | null, lossPct: number | null,
 *     jitterMs: number | null, protection: ProtectionLevel, sendLossPct: number | null},
 *   'protection-changed': Protection & {peerId: string | null, previous: ProtectionLevel},
 *   'microphone-ended': {deviceId: string | null, label: string},
 *   'microphone-changed': {stream: MediaStream, deviceId: string | null, label: string, reason: 'switched' | 'recovered'},
 *   'output-device': {deviceId: string},
 *   'mode': {mode: RoomMode},
 *   'error': {code: ErrorCode, message: string, fatal: boolean, retryAfterMs?: number},
 * }} TincanEventMap
 */

/**
 * A listener for event `K`: `e.detail` is typed.
 * @template {keyof TincanEventMap} K
 * @typedef {(event: CustomEvent<TincanEventMap[K]>) => void} TincanListener
 */

export {};
