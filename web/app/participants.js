// The participant list: one entry per person in the call with a live audio
// level meter (speaking indicator), mute badge, connection state, and a
// connection panel drawn from getStats() once a second.

import { Sparkline, formatValue } from './chart.js';

/** Audio level (0..1) above which someone counts as speaking. */
const SPEAKING_LEVEL = 0.02;
const SELF = 'self';

/**
 * @typedef {{
 *   li: HTMLLIElement,
 *   charts: {rtt: Sparkline, jitter: Sparkline, loss: Sparkline, bitrate: Sparkline} | null,
 *   audio: HTMLAudioElement | null,
 *   speakingUntil: number,
 * }} Entry
 */

export class Participants {
  /**
   * @param {HTMLElement} list   the <ul>
   * @param {HTMLElement} sink   where <audio> elements live
   * @param {import('../tincan-client.js').TincanClient} client
   */
  constructor(list, sink, client) {
    this.list = list;
    this.sink = sink;
    this.client = client;
    /** @type {Map<string, Entry>} */
    this.entries = new Map();
    /** @type {Map<number, HTMLAudioElement>} SFU slots' audio, by slot */
    this.slotAudio = new Map();
    /** @type {AudioContext | null} */ this.audioContext = null;
    /** @type {AnalyserNode | null} */ this.analyser = null;
    /** @type {MediaStreamAudioSourceNode | null} */ this.source = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.meterTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.statsTimer = undefined;
    this.template = /** @type {HTMLTemplateElement} */ (document.getElementById('participant-template'));
    this.#listen();
  }

  /** @param {MediaStream} stream the local microphone */
  start(stream) {
    this.stop();
    try {
      this.audioContext = new AudioContext();
      this.analyser = this.audioContext.createAnalyser();
      this.analyser.fftSize = 512;
    } catch {
      this.audioContext = null;
    }
    this.setLocalStream(stream);
    this.meterTimer = setInterval(() => this.#updateMeters(), 100);
    this.statsTimer = setInterval(() => this.#updateStats(), 1000);
  }

  /** @param {MediaStream} stream */
  setLocalStream(stream) {
    this.source?.disconnect();
    this.source = null;
    if (this.audioContext && this.analyser) {
      this.source = this.audioContext.createMediaStreamSource(stream);
      this.source.connect(this.analyser);
      this.audioContext.resume().catch(() => {});
    }
  }

  stop() {
    clearInterval(this.meterTimer);
    clearInterval(this.statsTimer);
    this.source?.disconnect();
    this.source = null;
    this.audioContext?.close().catch(() => {});
    this.audioContext = null;
    this.analyser = null;
    for (const id of [...this.entries.keys()]) this.#remove(id);
  }

  #listen() {
    const on = (/** @type {string} */ type, /** @type {(d: any) => void} */ fn) =>
      this.client.addEventListener(type, (e) => fn(/** @type {CustomEvent} */ (e).detail));
    // A full join and a resume both list everyone in the room now.
    const roster = (/** @type {any} */ joined) => {
      const keep = new Set([SELF, ...joined.peers.map((/** @type {any} */ p) => p.peerId)]);
      for (const id of [...this.entries.keys()]) if (!keep.has(id)) this.#remove(id);
      this.#upsert(SELF, { ...joined.self, muted: this.client.muted }, true);
      for (const peer of joined.peers) this.#upsert(peer.peerId, peer, false);
    };
    on('joined', roster);
    on('resumed', roster);
    on('peer-joined', ({ peer }) => this.#upsert(peer.peerId, peer, false));
    on('peer-left', ({ peerId }) => this.#remove(peerId));
    on('peer-muted', ({ peerId, muted }) => this.#setMuted(peerId, muted));
    on('self-muted', ({ muted }) => this.#setMuted(SELF, muted));
    on('track', ({ peerId, stream }) => this.#attachAudio(peerId, stream));
    // SFU mode: one element per slot, whoever the node puts in it.
    on('sfu-track', ({ slot, stream }) => this.#attachSlot(slot, stream));
    on('mode', ({ mode }) => {
      document.body.dataset.mode = mode;
      if (mode === 'mesh') for (const el of [...this.slotAudio.values()]) this.#dropSlot(el);
    });
    on('active-speakers', ({ slots }) => {
      const inSlot = new Set(slots.filter(Boolean).map((/** @type {any} */ s) => s.peerId));
      for (const [key, entry] of this.entries) entry.li.classList.toggle('in-slot', inSlot.has(key));
    });
    on('peer-state', ({ peerId, connectionState }) => {
      const el = this.entries.get(peerId)?.li.querySelector('.conn-state');
      if (!el) return;
      /** @type {HTMLElement} */ (el).dataset.state = connectionState;
      el.textContent = connectionState === 'connected' ? 'connected' : `${connectionState}…`;
    });
    on('connection-quality', ({ peerId, quality }) => {
      const el = /** @type {HTMLElement | undefined} */ (this.entries.get(peerId)?.li.querySelector('.quality'));
      if (!el) return;
      el.hidden = false;
      el.dataset.quality = quality;
      el.textContent = quality === 'lost' ? 'no audio' : `${quality} connection`;
    });
    on('active-speaker', ({ peerId, self }) => {
      const id = self ? SELF : peerId;
      for (const [key, entry] of this.entries) entry.li.classList.toggle('active-speaker', key === id);
    });
    on('first-packet', ({ peerId, sinceLinkMs }) => {
      const dd = this.entries.get(peerId)?.li.querySelector('.s-first');
      if (dd) dd.textContent = `${Math.round(sinceLinkMs)} ms`;
    });
  }

  /**
   * @param {string} id
   * @param {{displayName: string, muted: boolean, peerId?: string}} peer
   * @param {boolean} self
   */
  #upsert(id, peer, self) {
    let entry = this.entries.get(id);
    if (!entry) {
      const li = /** @type {HTMLLIElement} */ (
        /** @type {DocumentFragment} */ (this.template.content.cloneNode(true)).firstElementChild
      );
      li.dataset.peerId = id;
      if (self) {
        li.classList.add('self');
        li.querySelector('.stats')?.remove();
        const state = li.querySelector('.conn-state');
        if (state) state.textContent = '';
      }
      entry = { li, charts: null, audio: null, speakingUntil: 0 };
      if (!self) {
        const canvas = (/** @type {string} */ cls) => /** @type {HTMLCanvasElement} */ (li.querySelector(cls));
        entry.charts = {
          rtt: new Sparkline(canvas('.c-rtt'), { label: 'RTT', unit: 'ms', minMax: 5, color: '#2b7de9' }),
          jitter: new Sparkline(canvas('.c-jitter'), { label: 'Jitter', unit: 'ms', minMax: 2, color: '#8250df' }),
          loss: new Sparkline(canvas('.c-loss'), { label: 'Loss', unit: '%', minMax: 1, color: '#cf222e' }),
          bitrate: new Sparkline(canvas('.c-bitrate'), { label: 'In', unit: 'kbit/s', minMax: 40, digits: 0, color: '#1a7f37' }),
        };
        const state = /** @type {HTMLElement} */ (li.querySelector('.conn-state'));
        state.dataset.state = 'new';
        state.textContent = 'connecting…';
      }
      if (self) this.list.prepend(li);
      else this.list.append(li);
      this.entries.set(id, entry);
    }
    const name = self ? `${peer.displayName} (you)` : peer.displayName;
    /** @type {HTMLElement} */ (entry.li.querySelector('.name')).textContent = name;
    entry.li.querySelector('.meter')?.setAttribute('aria-label', `${peer.displayName} audio level`);
    this.#setMuted(id, peer.muted);
    this.#count();
    // The peer's audio may have arrived before we heard who it is.
    const link = self ? null : this.client.peers.get(id);
    if (link && link.remoteStream.getTracks().length > 0) this.#attachAudio(id, link.remoteStream);
  }

  /** @param {string} id */
  #remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    entry.li.remove();
    if (entry.audio) {
      this.client.detachAudio(entry.audio);
      entry.audio.srcObject = null;
      entry.audio.remove();
    }
    this.#count();
  }

  /**
   * @param {string} id
   * @param {boolean} muted
   */
  #setMuted(id, muted) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.li.classList.toggle('muted', muted);
    /** @type {HTMLElement} */ (entry.li.querySelector('.muted-badge')).hidden = !muted;
  }

  /**
   * @param {string} id
   * @param {MediaStream} stream
   */
  #attachAudio(id, stream) {
    const entry = this.entries.get(id);
    if (!entry) return;
    if (!entry.audio) {
      entry.audio = document.createElement('audio');
      entry.audio.autoplay = true;
      entry.audio.dataset.peerId = id;
      this.client.attachAudio(entry.audio);
      this.sink.append(entry.audio);
    }
    if (entry.audio.srcObject !== stream) entry.audio.srcObject = stream;
    entry.audio.play().catch(() => {
      // Autoplay blocked: the Join click normally unlocks it; retry on the next click.
      document.addEventListener('click', () => entry.audio?.play().catch(() => {}), { once: true });
    });
  }

  /**
   * @param {number} slot
   * @param {MediaStream} stream
   */
  #attachSlot(slot, stream) {
    let el = this.slotAudio.get(slot);
    if (!el) {
      el = document.createElement('audio');
      el.autoplay = true;
      el.dataset.slot = String(slot);
      this.client.attachAudio(el);
      this.sink.append(el);
      this.slotAudio.set(slot, el);
    }
    if (el.srcObject !== stream) el.srcObject = stream;
    const audio = el;
    audio.play().catch(() => {
      document.addEventListener('click', () => audio.play().catch(() => {}), { once: true });
    });
  }

  /** @param {HTMLAudioElement} el */
  #dropSlot(el) {
    this.slotAudio.delete(Number(el.dataset.slot));
    this.client.detachAudio(el);
    el.srcObject = null;
    el.remove();
  }

  #count() {
    const counter = document.getElementById('participant-count');
    if (counter) counter.textContent = `(${this.entries.size})`;
  }

  #localLevel() {
    if (!this.analyser || this.client.muted) return 0;
    const samples = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    // RMS, scaled to look like RTP's audio level (roughly 0..1).
    return Math.min(1, Math.sqrt(sum / samples.length) * 3);
  }

  #updateMeters() {
    const now = performance.now();
    // On the SFU, the slots are read once for every entry.
    const slotLevels = this.client.sfu ? this.client.sfuLevels() : null;
    for (const [id, entry] of this.entries) {
      const level =
        id === SELF ? this.#localLevel() : this.client.peers.get(id)?.audioLevel() ?? slotLevels?.get(id) ?? 0;
      const shown = Math.round(Math.min(1, Math.sqrt(level)) * 100);
      const meter = /** @type {HTMLElement} */ (entry.li.querySelector('.meter'));
      meter.setAttribute('aria-valuenow', String(shown));
      /** @type {HTMLElement} */ (meter.firstElementChild).style.width = `${shown}%`;
      if (level > SPEAKING_LEVEL) entry.speakingUntil = now + 400;
      const speaking = now < entry.speakingUntil;
      entry.li.classList.toggle('speaking', speaking);
      /** @type {HTMLElement} */ (entry.li.querySelector('.speaking-badge')).hidden = !speaking;
    }
  }

  async #updateStats() {
    // On the SFU, every participant's audio comes over the one connection
    // to the node: its figures, read once per tick (its rates are deltas
    // from the previous read), with the path marked SFU.
    const sfu = this.client.sfu;
    const sfuStats = sfu
      ? await sfu.stats().then(
          (s) => ({ ...s, path: `SFU, ${s.path ?? 'connecting'}` }),
          () => null,
        )
      : null;
    for (const [id, entry] of this.entries) {
      const mesh = this.client.peers.get(id);
      const link = mesh ?? sfu;
      if (!link || !entry.charts) continue;
      let s;
      try {
        s = mesh ? await mesh.stats() : sfuStats;
      } catch {
        continue;
      }
      if (!s) continue;
      const set = (/** @type {string} */ cls, /** @type {string} */ text) => {
        const dd = entry.li.querySelector(cls);
        if (dd) dd.textContent = text;
      };
      const ms = (/** @type {number | null} */ v) => (v === null ? '–' : `${formatValue(v)} ms`);
      const kbps = (/** @type {number | null} */ v) => (v === null ? '–' : `${formatValue(v, 0)} kbit/s`);
      set('.s-path', s.path === null ? '–' : `${s.path} (${s.localCandidateType} ↔ ${s.remoteCandidateType}${s.protocol ? `, ${s.protocol}` : ''})`);
      set('.s-rtt', ms(s.rttMs));
      set('.s-jitter', ms(s.jitterMs));
      set('.s-loss', s.lossPct === null ? '–' : `${formatValue(s.lossPct)} % (${s.packetsLost} lost)`);
      set('.s-in', kbps(s.inKbps));
      set('.s-out', kbps(s.outKbps));
      set('.s-jb', ms(s.jitterBufferMs));
      const n = link.negotiated();
      const codec = n?.red ? 'Opus + RED' : 'Opus';
      set(
        '.s-codec',
        n === null
          ? '–'
          : `${codec}, FEC ${n.fec ? 'on' : 'off'}, DTX ${n.dtx ? 'on' : 'off'}${n.maxBitrateKbps ? `, ≤ ${n.maxBitrateKbps} kbit/s` : ''}`,
      );
      entry.li.dataset.path = s.path ?? '';
      entry.charts.rtt.push(s.rttMs);
      entry.charts.jitter.push(s.jitterMs);
      entry.charts.loss.push(s.lossPct);
      entry.charts.bitrate.push(s.inKbps);
    }
  }
}
