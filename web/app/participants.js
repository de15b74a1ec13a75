// The participant list: one row per person in the call, drawn from the
// client's participant model (tincan/participants.js), which is the same in
// a mesh and on the SFU: name, mute badge, speaking state and level meter.
// The client plays the audio itself.
//
// In a mesh each row also shows its own link (connection state, quality
// verdict, and a getStats() panel with charts). On the SFU there is one link,
// to the media server: the rows show no link state, a single connection
// panel below the list shows that link, and a badge says it is a large call.

import { Sparkline, formatValue } from './chart.js';
import { PROTECTION_NAMES } from '../tincan/protection.js';

const SELF = 'self';
/** A level (0..1) above which our own microphone counts as speaking. */
const SPEAKING_LEVEL = 0.02;

/**
 * @typedef {{rtt: Sparkline, jitter: Sparkline, loss: Sparkline, bitrate: Sparkline}} Charts
 * @typedef {{li: HTMLLIElement, charts: Charts | null, speakingUntil: number}} Entry
 * @typedef {import('../tincan-client.js').Participant} Participant
 */

export class Participants {
  /**
   * @param {HTMLElement} list   the <ul>
   * @param {HTMLElement} _sink  unused: the client keeps its own <audio> elements
   * @param {import('../tincan-client.js').TincanClient} client
   */
  constructor(list, _sink, client) {
    this.list = list;
    this.client = client;
    /** @type {Map<string, Entry>} */
    this.entries = new Map();
    /** @type {AudioContext | null} */ this.audioContext = null;
    /** @type {AnalyserNode | null} */ this.analyser = null;
    /** @type {MediaStreamAudioSourceNode | null} */ this.source = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.meterTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */ this.statsTimer = undefined;
    this.template = /** @type {HTMLTemplateElement} */ (document.getElementById('participant-template'));
    const { badge, panel, charts } = this.#sfuElements();
    this.largeCall = badge;
    this.sfuPanel = panel;
    this.sfuCharts = charts;
    this.#listen();
  }

  /** @param {MediaStream | null} stream the local microphone (null: listening only) */
  start(stream) {
    this.stop();
    try {
      this.audioContext = new AudioContext();
      this.analyser = this.audioContext.createAnalyser();
      this.analyser.fftSize = 512;
    } catch {
      this.audioContext = null;
    }
    if (stream) this.setLocalStream(stream);
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
    this.#showMode('mesh');
  }

  /** The large-call badge (above the list) and the SFU connection panel (below it). */
  #sfuElements() {
    const badge = document.createElement('p');
    badge.id = 'large-call';
    badge.className = 'large-call';
    badge.hidden = true;
    badge.textContent = 'Large call: audio is routed through a media server';
    const panel = /** @type {HTMLDetailsElement} */ (
      /** @type {HTMLElement} */ (this.template.content.querySelector('.stats')).cloneNode(true)
    );
    panel.id = 'sfu-panel';
    panel.hidden = true;
    /** @type {HTMLElement} */ (panel.querySelector('summary')).textContent = 'Connection to the media server';
    panel.querySelector('.s-first')?.closest('div')?.remove();
    this.list.before(badge);
    this.list.after(panel);
    return { badge, panel, charts: this.#charts(panel) };
  }

  /** @param {HTMLElement} root */
  #charts(root) {
    const canvas = (/** @type {string} */ cls) => /** @type {HTMLCanvasElement} */ (root.querySelector(cls));
    return {
      rtt: new Sparkline(canvas('.c-rtt'), { label: 'RTT', unit: 'ms', minMax: 5, color: '#2b7de9' }),
      jitter: new Sparkline(canvas('.c-jitter'), { label: 'Jitter', unit: 'ms', minMax: 2, color: '#8250df' }),
      loss: new Sparkline(canvas('.c-loss'), { label: 'Loss', unit: '%', minMax: 1, color: '#cf222e' }),
      bitrate: new Sparkline(canvas('.c-bitrate'), { label: 'In', unit: 'kbit/s', minMax: 40, digits: 0, color: '#1a7f37' }),
    };
  }

  /** @param {'mesh' | 'sfu'} mode */
  #showMode(mode) {
    document.body.dataset.mode = mode;
    this.largeCall.hidden = mode !== 'sfu';
    this.sfuPanel.hidden = mode !== 'sfu';
    this.list.classList.toggle('on-sfu', mode === 'sfu');
    for (const [id, entry] of this.entries) if (id !== SELF) this.#linkState(entry, id);
  }

  #listen() {
    const client = this.client;
    client.on('joined', (joined) => this.#roster(joined.self.displayName));
    client.on('resumed', (joined) => this.#roster(joined.self.displayName));
    client.on('participant-joined', ({ participant }) => this.#upsert(participant));
    client.on('participant-left', ({ participant }) => this.#remove(participant.id));
    client.on('participant-updated', ({ participant }) => this.#upsert(participant));
    client.on('self-muted', ({ muted }) => this.#setMuted(SELF, muted));
    client.on('mode', ({ mode }) => this.#showMode(mode));
    client.on('peer-state', ({ peerId, connectionState }) => {
      const el = /** @type {HTMLElement | null | undefined} */ (this.entries.get(peerId)?.li.querySelector('.conn-state'));
      if (!el) return;
      el.dataset.state = connectionState;
      if (client.mode === 'mesh') el.textContent = connectionState === 'connected' ? 'connected' : `${connectionState}…`;
    });
    client.on('active-speaker', ({ peerId, self }) => {
      const id = self ? SELF : peerId;
      for (const [key, entry] of this.entries) entry.li.classList.toggle('active-speaker', key === id);
    });
    client.on('first-packet', ({ peerId, sinceLinkMs }) => {
      const dd = peerId === null ? null : this.entries.get(peerId)?.li.querySelector('.s-first');
      if (dd) dd.textContent = `${Math.round(sinceLinkMs)} ms`;
    });
  }

  /**
   * A full join or a resume: ourselves, then everyone the client lists.
   * @param {string} selfName
   */
  #roster(selfName) {
    const keep = new Set([SELF, ...this.client.participants.keys()]);
    for (const id of [...this.entries.keys()]) if (!keep.has(id)) this.#remove(id);
    this.#row(SELF, `${selfName} (you)`, selfName, this.client.muted);
    for (const participant of this.client.participants.values()) this.#upsert(participant);
    this.#showMode(this.client.mode);
  }

  /** @param {Participant} p */
  #upsert(p) {
    const entry = this.#row(p.id, p.displayName, p.displayName, p.muted);
    this.#linkState(entry, p.id);
  }

  /**
   * The row of `id`, made if new, with its name and mute badge.
   * @param {string} id
   * @param {string} shown
   * @param {string} name
   * @param {boolean} muted
   */
  #row(id, shown, name, muted) {
    let entry = this.entries.get(id);
    if (!entry) {
      const li = /** @type {HTMLLIElement} */ (
        /** @type {DocumentFragment} */ (this.template.content.cloneNode(true)).firstElementChild
      );
      li.dataset.peerId = id;
      const self = id === SELF;
      if (self) {
        li.classList.add('self');
        li.querySelector('.stats')?.remove();
        /** @type {HTMLElement} */ (li.querySelector('.conn-state')).textContent = '';
      }
      entry = { li, charts: self ? null : this.#charts(li), speakingUntil: 0 };
      if (self) this.list.prepend(li);
      else this.list.append(li);
      this.entries.set(id, entry);
      this.#count();
    }
    /** @type {HTMLElement} */ (entry.li.querySelector('.name')).textContent = shown;
    entry.li.querySelector('.meter')?.setAttribute('aria-label', `${name} audio level`);
    this.#setMuted(id, muted);
    return entry;
  }

  /**
   * Per-link state in a row: shown in a mesh (from the participant's quality
   * and its link), absent on the SFU.
   * @param {Entry} entry
   * @param {string} id
   */
  #linkState(entry, id) {
    const onSfu = this.client.mode === 'sfu';
    const state = /** @type {HTMLElement} */ (entry.li.querySelector('.conn-state'));
    const quality = /** @type {HTMLElement} */ (entry.li.querySelector('.quality'));
    const stats = /** @type {HTMLElement | null} */ (entry.li.querySelector('.stats'));
    if (stats) stats.hidden = onSfu;
    if (onSfu) {
      state.textContent = '';
      state.hidden = true;
      quality.hidden = true;
      quality.textContent = '';
      return;
    }
    state.hidden = false;
    const link = this.client.peers.get(id);
    const connectionState = link?.pc.connectionState ?? 'new';
    state.dataset.state = connectionState;
    state.textContent = connectionState === 'connected' ? 'connected' : `${connectionState === 'new' ? 'connecting' : connectionState}…`;
    const verdict = this.client.participants.get(id)?.quality ?? null;
    quality.hidden = verdict === null;
    if (verdict) {
      quality.dataset.quality = verdict;
      quality.textContent = verdict === 'lost' ? 'no audio' : `${verdict} connection`;
    }
  }

  /** @param {string} id */
  #remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    entry.li.remove();
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
    // RMS on the scale of RTP's audio level (a full-scale sine is 1).
    return Math.min(1, Math.sqrt(sum / samples.length) * Math.SQRT2);
  }

  #updateMeters() {
    const now = performance.now();
    for (const [id, entry] of this.entries) {
      let level;
      let speaking;
      if (id === SELF) {
        level = this.#localLevel();
        if (level > SPEAKING_LEVEL) entry.speakingUntil = now + 400;
        speaking = now < entry.speakingUntil;
      } else {
        const p = this.client.participants.get(id);
        level = p?.level ?? 0;
        speaking = p?.speaking ?? false;
      }
      const shown = Math.round(Math.min(1, Math.sqrt(level)) * 100);
      const meter = /** @type {HTMLElement} */ (entry.li.querySelector('.meter'));
      meter.setAttribute('aria-valuenow', String(shown));
      /** @type {HTMLElement} */ (meter.firstElementChild).style.width = `${shown}%`;
      // The row's class shows its "Speaking" badge (style.css), which keeps
      // its place when hidden: a row never shifts the layout as its person
      // starts or stops speaking.
      entry.li.classList.toggle('speaking', speaking);
    }
  }

  async #updateStats() {
    const sfu = this.client.sfu;
    if (sfu) {
      // One link for everyone: its figures in the one panel.
      const s = await sfu.stats().catch(() => null);
      if (s) {
        this.#showStats(this.sfuPanel, this.sfuCharts, { ...s, path: `SFU, ${s.path ?? 'connecting'}` }, sfu.negotiated(), this.client.protection(null));
      }
      return;
    }
    for (const [id, entry] of this.entries) {
      const link = this.client.peers.get(id);
      if (!link || !entry.charts) continue;
      const s = await link.stats().catch(() => null);
      if (s) this.#showStats(entry.li, entry.charts, s, link.negotiated(), this.client.protection(id));
      if (s) entry.li.dataset.path = s.path ?? '';
    }
  }

  /**
   * @param {HTMLElement} root
   * @param {Charts} charts
   * @param {Omit<import('../tincan/stats.js').PeerStats, 'path'> & {path: string | null}} s
   * @param {{red: boolean, fec: boolean, dtx: boolean, maxBitrateKbps: number | null} | null} n
   * @param {import('../tincan/protection.js').Protection | null} p
   */
  #showStats(root, charts, s, n, p) {
    const set = (/** @type {string} */ cls, /** @type {string} */ text) => {
      const dd = root.querySelector(cls);
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
    const codec = n?.red ? 'Opus + RED' : 'Opus';
    set(
      '.s-codec',
      n === null
        ? '–'
        : `${codec}, FEC ${n.fec ? 'on' : 'off'}, DTX ${n.dtx ? 'on' : 'off'}${n.maxBitrateKbps ? `, ≤ ${n.maxBitrateKbps} kbit/s` : ''}`,
    );
    set('.s-protection', p === null ? '–' : protectionText(p));
    charts.rtt.push(s.rttMs);
    charts.jitter.push(s.jitterMs);
    charts.loss.push(s.lossPct);
    charts.bitrate.push(s.inKbps);
  }
}

/**
 * The connection panel's "Loss protection": the level, what it does to what
 * we send, and the loss it answers (ours as the far end reports it; theirs
 * as we receive it).
 * @param {import('../tincan/protection.js').Protection} p
 */
export function protectionText(p) {
  const pct = (/** @type {number | null} */ v) => (v === null ? '–' : `${formatValue(v)} %`);
  const does = [];
  if (p.red !== null) does.push(p.red ? 'RED on' : 'RED off');
  if (p.redundancy !== null && p.redundancy !== 1) does.push(`${p.redundancy} earlier frames per packet`);
  if (p.ptimeMs) does.push(`${p.ptimeMs} ms packets`);
  if (p.maxBitrateKbps) does.push(p.level < 2 ? `Opus at ${p.maxBitrateKbps} kbit/s` : `≤ ${p.maxBitrateKbps} kbit/s`);
  if (p.jitterTargetMs) does.push(`${p.jitterTargetMs} ms jitter buffer`);
  const what = does.length ? ` (${does.join(', ')})` : '';
  return `level ${p.level}, ${PROTECTION_NAMES[p.level]}${what}; loss sent ${pct(p.sendLossPct)}, received ${pct(p.recvLossPct)}, concealed ${pct(p.concealedPct)}`;
}
