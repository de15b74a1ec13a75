// One RTCPeerConnection to the room's media node, for rooms past the mesh
// size (docs/sfu.md): the microphone goes up once, and a fixed number of
// audio slots come down, each carrying whichever participant the node puts
// there. The node says who is in which slot over the `tincan` data channel
// (`active-speakers`); a slot that changes speaker needs no renegotiation.
//
// The offer is complete (we wait for ICE gathering to end), because the
// signaling passes it to the node in one request: there is no trickle.

import { summarizeStats } from './stats.js';
import { tuneOpusSdp, opusParams, redForSfu, protectSdp } from './opus.js';
import { setMaxBitrate } from './protection.js';
import { RedBooster } from './red-boost.js';

/** Give up waiting for ICE gathering after this long and offer what we have. */
const GATHER_TIMEOUT_MS = 3_000;
/** How often inbound audio is checked for the first packet. */
const FIRST_PACKET_POLL_MS = 100;
/**
 * A connection `disconnected` this long counts as failed (Chromium takes
 * far longer to say `failed`): the node is likely gone, and the signaling
 * places the room on another one.
 */
const DISCONNECTED_GIVE_UP_MS = 4_000;

/**
 * @typedef {{slot: number, peerId: string, level: number} | null} SlotSpeaker
 */

/**
 * Events: `track` `{slot, stream}`, `active-speakers` `{slots: SlotSpeaker[]}`,
 * `state` `{connectionState, iceConnectionState}`, `connected`, `failed`,
 * `first-packet` `{at}`.
 */
export class SfuLink extends EventTarget {
  /**
   * @param {{
   *   rtcConfig: RTCConfiguration,
   *   localStream: MediaStream | null,
   *   slots: number,
   *   listenOnly?: boolean,
   *   sendOffer: (sdp: string) => void,
   *   opus?: import('./opus.js').OpusOptions,
   * }} options
   */
  constructor(options) {
    super();
    this.slots = Math.max(1, Math.min(16, Number(options.slots) || 3));
    this.sendOffer = options.sendOffer;
    this.opus = options.opus ?? {};
    this.createdAt = performance.now();
    this.pc = new RTCPeerConnection(options.rtcConfig);
    const track = options.listenOnly ? null : options.localStream?.getAudioTracks()[0] ?? null;
    // The microphone's transceiver: first, as the node expects. Listening
    // only, it has no track, so nothing is sent (an `inactive` m-line here
    // breaks the node's answer: it bundles on this first m-line).
    this.sender = this.pc.addTransceiver(track ?? 'audio', {
      direction: 'sendonly',
      streams: options.localStream ? [options.localStream] : [],
    }).sender;
    /**
     * RED on the microphone: none on a congested uplink, never more than
     * the browser's one earlier frame (the node rebuilds RED for each
     * listener from the frames alone). red-boost.js.
     * @type {RedBooster | null}
     */
    this.redBoost = this.opus.red === false ? null : RedBooster.follow(this.pc, this.sender, { maxLevel: 1 });
    /** @type {RTCRtpTransceiver[]} slot i is the i-th */
    this.slotTransceivers = [];
    for (let i = 0; i < this.slots; i += 1) {
      this.slotTransceivers.push(this.pc.addTransceiver('audio', { direction: 'recvonly' }));
    }
    /** @type {MediaStream[]} one stream per slot, for `<audio>` elements */
    this.streams = this.slotTransceivers.map((t) => new MediaStream([t.receiver.track]));
    /** @type {SlotSpeaker[]} */
    this.speakers = new Array(this.slots).fill(null);
    // RED (RFC 2198) on every audio m-line when on: the node forwards it
    // to receivers that negotiated it; off, it is not offered at all.
    for (const transceiver of this.pc.getTransceivers()) redForSfu(transceiver, this.opus);
    this.channel = this.pc.createDataChannel('tincan', { ordered: true });
    this.channel.onmessage = (e) => this.#onEvent(e.data);
    this.pc.ontrack = (e) => {
      const slot = this.slotTransceivers.indexOf(e.transceiver);
      if (slot >= 0) this.#emit('track', { slot, stream: this.streams[slot] });
    };
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      this.#emit('state', { connectionState: state, iceConnectionState: this.pc.iceConnectionState });
      clearTimeout(this.disconnectTimer);
      if (state === 'connected') {
        this.#emit('connected', {});
        this.#watchFirstPacket();
      } else if (state === 'failed') this.#emit('failed', {});
      else if (state === 'disconnected') {
        this.disconnectTimer = setTimeout(() => {
          if (!this.closed && this.pc.connectionState === 'disconnected') this.#emit('failed', {});
        }, DISCONNECTED_GIVE_UP_MS);
      }
    };
    /** @type {ReturnType<typeof setTimeout> | undefined} */ this.disconnectTimer = undefined;
    this.closed = false;
    /** Whether the node's answer took: set by the client once connected. */
    this.answered = false;
    /** @type {any} */ this.lastStats = null;
    /** @type {import('./protection.js').ProtectionSettings} what loss protection applies (protection.js) */
    this.protection = { red: null, ptimeMs: null, maxBitrateKbps: null };
    /** @type {number | null} */ this.firstPacketAt = null;
  }

  /** Makes the complete offer and hands it to `sendOffer`. */
  async start() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription({ type: 'offer', sdp: tuneOpusSdp(offer.sdp ?? '', this.opus) });
    await this.#gathered();
    if (this.closed) return;
    this.sendOffer(/** @type {RTCSessionDescription} */ (this.pc.localDescription).sdp);
  }

  /** @param {string} sdp the node's answer */
  async handleAnswer(sdp) {
    if (this.closed || this.pc.signalingState !== 'have-local-offer') return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    this.nodeAnswer = sdp;
  }

  /** @type {string | null} the node's answer, as it sent it */
  nodeAnswer = null;
  /** @type {number | null} the packet time our encoder was last given (null: the default) */
  #ptimeMs = null;

  /**
   * Gives our encoder a new packet time without the node: the packet time
   * is a receiver's wish read from the remote description (RFC 7587), so
   * the page makes a new offer and applies the node's own answer again with
   * `ptime` in its Opus line. Nothing the node sees changes (same ICE,
   * DTLS and m-lines); it forwards Opus frames of any length.
   * @param {number | null} ptimeMs
   */
  async #repacketize(ptimeMs) {
    const answer = this.nodeAnswer;
    if (!answer || ptimeMs === this.#ptimeMs || this.pc.signalingState !== 'stable') return;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription({ type: 'offer', sdp: tuneOpusSdp(offer.sdp ?? '', this.opus) });
    await this.pc.setRemoteDescription({ type: 'answer', sdp: protectSdp(answer, { red: null, ptimeMs, maxBitrateKbps: null }) });
    // Only once applied: a change that failed is tried again next time.
    this.#ptimeMs = ptimeMs;
  }

  /** @param {MediaStreamTrack | null} track */
  async replaceTrack(track) {
    await this.sender.replaceTrack(track);
  }

  /**
   * Loss protection of what we send (protection.js). The link is negotiated
   * once with the node, so only the cap changes here (`setParameters`);
   * RED is offered first from the start (unless `red: false`) and stays on.
   * @param {import('./protection.js').ProtectionSettings} settings
   */
  async setProtection(settings) {
    if (this.closed) return;
    await setMaxBitrate(this.sender, settings.maxBitrateKbps);
    await this.#repacketize(settings.ptimeMs).catch(() => {});
    // What is in force: the packet time only if the renegotiation took.
    this.protection = { red: null, ptimeMs: this.#ptimeMs, maxBitrateKbps: settings.maxBitrateKbps };
  }

  /**
   * What the node's answer negotiated for the audio we send.
   * @returns {{red: boolean, fec: boolean, dtx: boolean, maxBitrateKbps: number | null} | null}
   */
  negotiated() {
    return opusParams(this.pc.remoteDescription?.sdp);
  }

  async stats() {
    this.lastStats = await summarizeStats(await this.pc.getStats(), this.lastStats);
    return this.lastStats;
  }

  close() {
    this.closed = true;
    this.redBoost?.close();
    clearTimeout(this.disconnectTimer);
    try {
      this.channel.close();
    } catch {
      // already closed
    }
    this.pc.close();
  }

  async #gathered() {
    if (this.pc.iceGatheringState === 'complete') return;
    await new Promise((resolve) => {
      const timer = setTimeout(done, GATHER_TIMEOUT_MS);
      const pc = this.pc;
      function done() {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        resolve(undefined);
      }
      function check() {
        if (pc.iceGatheringState === 'complete') done();
      }
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  async #watchFirstPacket() {
    while (!this.closed && this.firstPacketAt === null) {
      const report = await this.pc.getStats().catch(() => null);
      let packets = 0;
      report?.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') packets += s.packetsReceived ?? 0;
      });
      if (packets > 0) {
        this.firstPacketAt = performance.now();
        this.#emit('first-packet', { at: this.firstPacketAt });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, FIRST_PACKET_POLL_MS));
    }
  }

  /** @param {unknown} data */
  #onEvent(data) {
    let event;
    try {
      event = JSON.parse(String(data));
    } catch {
      return;
    }
    if (event?.type !== 'active-speakers' || !Array.isArray(event.slots)) return;
    /** @type {SlotSpeaker[]} */
    const slots = new Array(this.slots).fill(null);
    for (const [i, s] of event.slots.entries()) {
      if (i >= this.slots || !s || typeof s.peerId !== 'string') continue;
      slots[i] = { slot: i, peerId: s.peerId, level: Number(s.level) || -127 };
    }
    this.speakers = slots;
    this.#emit('active-speakers', { slots });
  }

  /**
   * @param {string} type
   * @param {object} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
