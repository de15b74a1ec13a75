// The people in the call, the same whatever the room's mode.
//
// In a mesh each participant's audio comes on their own peer connection;
// on the SFU it comes in whichever slot the node put them in (the node says
// who is where in `active-speakers`), and a participant in no slot has no
// stream at that moment. Either way a `Participant` carries its stream, its
// level and speaking state, the quality of the connection its audio takes
// and that path, and the client emits the same events:
//
//   participant-joined   {participant}
//   participant-left     {participant}
//   participant-updated  {participant, changed}  (`changed`: the fields that changed)
//   speaking-changed     {participant, speaking}
//
// Levels, every LEVEL_TICK_MS: in a mesh the RFC 6464 level of the peer's
// RTP (`getSynchronizationSources()`); on the SFU the level measured on the
// slot's received audio (tincan/playback.js); a level falls by at most
// LEVEL_DECAY per tick, so a meter does not flicker. Speaking: a level above
// SPEAKING_LEVEL, or on the SFU the node's own smoothed level for the slot
// (`active-speakers`) above it; it ends after QUIET_MS below both.

/**
 * @typedef {import('./peer.js').PeerInfo} PeerInfo
 * @typedef {import('./monitor.js').Quality} Quality
 * @typedef {'direct' | 'relay' | 'sfu'} MediaPath
 * @typedef {{slot: number, peerId: string, level: number} | null} SlotSpeaker
 * @typedef {'displayName' | 'muted' | 'stream' | 'quality' | 'path'} ParticipantField
 */

export const LEVEL_TICK_MS = 100;
export const SPEAKING_LEVEL = 0.02;
export const QUIET_MS = 600;
export const LEVEL_DECAY = 0.7;

/**
 * @typedef {{
 *   info: PeerInfo,
 *   slot: number | null,
 *   stream: MediaStream | null,
 *   level: number,
 *   speaking: boolean,
 *   loudAt: number,
 *   meshQuality: Quality | null,
 *   quality: Quality | null,
 *   meshPath: 'direct' | 'relay' | null,
 *   path: MediaPath | null,
 * }} State
 */

/** @type {WeakMap<Participant, State>} */
const STATE = new WeakMap();

/** @param {Participant} p */
const state = (p) => /** @type {State} */ (STATE.get(p));

/** One person in the call (not us). Read-only: the client keeps it current. */
export class Participant {
  /** @param {PeerInfo} info */
  constructor(info) {
    STATE.set(this, {
      info: { ...info },
      slot: null,
      stream: null,
      level: 0,
      speaking: false,
      loudAt: 0,
      meshQuality: null,
      quality: null,
      meshPath: null,
      path: null,
    });
  }

  /** The participant id (`peerId` in the protocol). */
  get id() {
    return state(this).info.peerId;
  }
  get userId() {
    return state(this).info.userId;
  }
  get displayName() {
    return state(this).info.displayName;
  }
  get muted() {
    return Boolean(state(this).info.muted);
  }
  /** Heard above the speaking level within the last 0.6 s. */
  get speaking() {
    return state(this).speaking;
  }
  /** Their audio level as heard here, 0..1 (1: a full-scale sine). */
  get level() {
    return state(this).level;
  }
  /** The quality of the connection their audio reaches us on; null before the first verdict. */
  get quality() {
    return state(this).quality;
  }
  /** How their audio reaches us: `direct` or `relay` (TURN) in a mesh, `sfu`; null while unknown. */
  get path() {
    return state(this).path;
  }
  /** Their audio: their peer connection's stream, or the SFU slot carrying them now; null when none. */
  get stream() {
    return state(this).stream;
  }
  /** On the SFU, the slot carrying them now, else null. */
  get slot() {
    return state(this).slot;
  }

  toJSON() {
    const { id, userId, displayName, muted, speaking, level, quality, path, slot } = this;
    return { id, userId, displayName, muted, speaking, level, quality, path, slot, hasStream: this.stream !== null };
  }
}

/**
 * @typedef {{
 *   emit: (type: 'participant-joined' | 'participant-left' | 'participant-updated' | 'speaking-changed', detail: any) => void,
 *   playback: import('./playback.js').AudioPlayback,
 *   meshLevel: (peerId: string) => number | null,
 * }} ParticipantsHost
 */

/** The client's participants; `map` is what `client.participants` shows. */
export class ParticipantList {
  /** @param {ParticipantsHost} host */
  constructor(host) {
    this.host = host;
    /** @type {Map<string, Participant>} */
    this.map = new Map();
    /** @type {'mesh' | 'sfu'} */
    this.mode = 'mesh';
    /** @type {Map<string, MediaStream>} mesh peers' streams (one may come before its peer is listed) */
    this.meshStreams = new Map();
    /** @type {MediaStream[] | null} the SFU slots' streams, while an SFU link exists */
    this.slotStreams = null;
    /** @type {Map<string, number>} on the SFU, the node's last level (0..1) for each participant in a slot */
    this.nodeLevels = new Map();
    /** @type {Quality | null} the SFU link's quality */
    this.sfuQuality = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.timer = undefined;
  }

  start() {
    this.timer ??= setInterval(() => this.tick(), LEVEL_TICK_MS);
  }

  /** Forgets everyone (the call ended). */
  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const id of [...this.map.keys()]) this.remove(id);
    this.meshStreams.clear();
    this.setSlotStreams(null);
    this.host.playback.clear();
    this.mode = 'mesh';
    this.sfuQuality = null;
  }

  /**
   * Someone is in the room (new, or restated by `joined`/`resumed`).
   * @param {PeerInfo} info
   */
  upsert(info) {
    const existing = this.map.get(info.peerId);
    if (!existing) {
      const participant = new Participant(info);
      this.map.set(info.peerId, participant);
      this.#derive(participant, [], false);
      this.host.emit('participant-joined', { participant });
      return;
    }
    const s = state(existing);
    /** @type {ParticipantField[]} */
    const changed = [];
    if (s.info.displayName !== info.displayName) changed.push('displayName');
    if (Boolean(s.info.muted) !== Boolean(info.muted)) changed.push('muted');
    s.info = { ...info };
    this.#derive(existing, changed);
  }

  /** @param {string} peerId */
  remove(peerId) {
    const participant = this.map.get(peerId);
    if (!participant) return;
    this.map.delete(peerId);
    this.meshStreams.delete(peerId);
    this.host.playback.delete(`peer:${peerId}`);
    const s = state(participant);
    s.stream = null;
    s.speaking = false;
    s.level = 0;
    this.host.emit('participant-left', { participant });
  }

  /**
   * @param {string} peerId
   * @param {boolean} muted
   */
  setMuted(peerId, muted) {
    const p = this.map.get(peerId);
    if (!p || p.muted === muted) return;
    state(p).info.muted = muted;
    this.#derive(p, ['muted']);
  }

  /**
   * A mesh peer's audio arrived (or its link closed: null).
   * @param {string} peerId
   * @param {MediaStream | null} stream
   */
  setMeshStream(peerId, stream) {
    if (stream) {
      this.host.playback.set(`peer:${peerId}`, stream);
      this.meshStreams.set(peerId, stream);
    } else {
      this.host.playback.delete(`peer:${peerId}`);
      this.meshStreams.delete(peerId);
    }
    const p = this.map.get(peerId);
    if (!p) return;
    const s = state(p);
    if (!stream) {
      s.meshQuality = null;
      s.meshPath = null;
    }
    this.#derive(p, []);
  }

  /** @param {'mesh' | 'sfu'} mode */
  setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    for (const p of this.map.values()) this.#derive(p, []);
  }

  /**
   * The SFU link's slot streams (null: no SFU link).
   * @param {MediaStream[] | null} streams
   */
  setSlotStreams(streams) {
    this.host.playback.clear((key) => key.startsWith('slot:'));
    this.slotStreams = streams;
    for (const [i, stream] of (streams ?? []).entries()) this.host.playback.set(`slot:${i}`, stream, { measure: true });
    if (!streams) {
      this.sfuQuality = null;
      this.nodeLevels.clear();
      for (const p of this.map.values()) state(p).slot = null;
    }
    for (const p of this.map.values()) this.#derive(p, []);
  }

  /**
   * Who the node put in each slot (`active-speakers`).
   * @param {SlotSpeaker[]} slots
   */
  setSlots(slots) {
    /** @type {Map<string, number>} */
    const bySlot = new Map();
    this.nodeLevels = new Map();
    for (const s of slots) {
      if (!s) continue;
      bySlot.set(s.peerId, s.slot);
      // -dBov to linear (0 dBov is 1).
      this.nodeLevels.set(s.peerId, s.level <= -127 ? 0 : 10 ** (s.level / 20));
    }
    for (const p of this.map.values()) {
      const s = state(p);
      const slot = bySlot.get(p.id) ?? null;
      if (s.slot === slot) continue;
      s.slot = slot;
      this.#derive(p, []);
    }
  }

  /**
   * A connection-quality verdict: a mesh peer's, or the SFU link's (peerId null).
   * @param {string | null} peerId
   * @param {Quality} quality
   */
  setQuality(peerId, quality) {
    if (peerId === null) {
      this.sfuQuality = quality;
      for (const p of this.map.values()) this.#derive(p, []);
      return;
    }
    const p = this.map.get(peerId);
    if (!p) return;
    state(p).meshQuality = quality;
    this.#derive(p, []);
  }

  /**
   * A mesh peer's selected candidate pair (`direct` or `relayed`).
   * @param {string} peerId
   * @param {'direct' | 'relayed' | null} path
   */
  setMeshPath(peerId, path) {
    const p = this.map.get(peerId);
    if (!p || path === null) return;
    state(p).meshPath = path === 'relayed' ? 'relay' : 'direct';
    this.#derive(p, []);
  }

  /** Levels and speaking states, every LEVEL_TICK_MS. */
  tick() {
    const now = performance.now();
    for (const p of this.map.values()) {
      const s = state(p);
      let level = 0;
      if (this.meshStreams.has(p.id)) level = Math.max(level, this.host.meshLevel(p.id) ?? 0);
      if (s.slot !== null && this.slotStreams) level = Math.max(level, this.host.playback.level(`slot:${s.slot}`));
      const node = s.slot !== null && this.slotStreams ? this.nodeLevels.get(p.id) ?? 0 : 0;
      if (p.muted) level = 0;
      s.level = p.muted ? 0 : Math.max(level, s.level * LEVEL_DECAY);
      if (level > SPEAKING_LEVEL || (!p.muted && node > SPEAKING_LEVEL)) s.loudAt = now;
      const speaking = s.loudAt === now || (s.speaking && now - s.loudAt < QUIET_MS);
      if (speaking !== s.speaking) {
        s.speaking = speaking;
        this.host.emit('speaking-changed', { participant: p, speaking });
      }
    }
  }

  /**
   * Recomputes what depends on the mode (stream, quality, path) and emits
   * `participant-updated` with what changed.
   * @param {Participant} p
   * @param {ParticipantField[]} changed
   * @param {boolean} [emit]
   */
  #derive(p, changed, emit = true) {
    const s = state(p);
    const onSfu = this.mode === 'sfu' && this.slotStreams !== null;
    const slotStream = s.slot !== null && this.slotStreams ? this.slotStreams[s.slot] ?? null : null;
    // During the switch to the SFU the mesh link still plays until it closes.
    const stream = slotStream ?? this.meshStreams.get(p.id) ?? null;
    const quality = onSfu ? this.sfuQuality : s.meshQuality;
    const path = onSfu ? 'sfu' : s.meshPath;
    if (stream !== s.stream) changed.push('stream');
    if (quality !== s.quality) changed.push('quality');
    if (path !== s.path) changed.push('path');
    s.stream = stream;
    s.quality = quality;
    s.path = path;
    if (emit && changed.length > 0 && this.map.get(p.id) === p) this.host.emit('participant-updated', { participant: p, changed });
  }
}
