// Remote audio, played and measured by the client itself.
//
// Playback: one `<audio>` element per stream the client manages (a mesh
// peer's stream, or an SFU slot's), kept off the DOM unless the app gives a
// container (then hidden in it), on the output device chosen with
// `setOutputDevice` (`setSinkId`). A `play()` refused by the browser's
// autoplay policy is retried on the next click or key press, and reported
// once as `autoplay-blocked`.
//
// Levels: an SFU slot's receiver carries no RFC 6464 `audioLevel` (the
// node rewrites the RTP it forwards), so each slot's received audio is
// measured with a Web Audio `AnalyserNode`: the RMS of the last 2048 samples,
// scaled so that a full-scale sine is 1 (the scale of RTP's audio level).
// Chromium feeds a remote stream to Web Audio only while a media element
// plays it, so with playback off each measured stream gets a muted element.

/**
 * @typedef {{
 *   attach: (element: HTMLAudioElement) => void,
 *   detach: (element: HTMLAudioElement) => void,
 *   blocked: () => void,
 * }} PlaybackHost
 */

export class AudioPlayback {
  /**
   * @param {PlaybackHost} host
   * @param {{play: boolean, container: HTMLElement | null}} options
   */
  constructor(host, options) {
    this.host = host;
    this.play = options.play;
    this.container = options.container;
    /** @type {Map<string, HTMLAudioElement>} by key (`peer:ID`, `slot:N`) */
    this.elements = new Map();
    /** @type {Map<string, {source: MediaStreamAudioSourceNode, analyser: AnalyserNode, stream: MediaStream}>} */
    this.meters = new Map();
    /** @type {AudioContext | null} */ this.context = null;
    /** @type {Float32Array<ArrayBuffer> | null} */ this.samples = null;
    this.waitingForGesture = false;
    this.retry = () => {
      this.waitingForGesture = false;
      for (const el of this.elements.values()) if (el.paused) void this.#start(el);
      void this.context?.resume().catch(() => {});
    };
  }

  /**
   * Plays `stream` under `key` (replacing what played there), when playback
   * is on or `measure` needs an element.
   * @param {string} key
   * @param {MediaStream} stream
   * @param {{measure?: boolean}} [options] also measure its level (`level(key)`)
   */
  set(key, stream, options = {}) {
    if (this.play || options.measure) {
      let el = this.elements.get(key);
      if (!el) {
        el = new Audio();
        el.autoplay = true;
        el.dataset.tincan = key;
        el.muted = !this.play;
        this.host.attach(el);
        this.container?.append(el);
        this.elements.set(key, el);
      }
      if (el.srcObject !== stream) el.srcObject = stream;
      void this.#start(el);
    }
    if (options.measure) this.#measure(key, stream);
  }

  /** @param {string} key */
  delete(key) {
    const el = this.elements.get(key);
    if (el) {
      this.elements.delete(key);
      this.host.detach(el);
      el.pause();
      el.srcObject = null;
      el.remove();
    }
    const meter = this.meters.get(key);
    if (meter) {
      this.meters.delete(key);
      meter.source.disconnect();
    }
  }

  /** @param {(key: string) => boolean} [which] every key by default */
  clear(which = () => true) {
    for (const key of [...new Set([...this.elements.keys(), ...this.meters.keys()])]) if (which(key)) this.delete(key);
  }

  /** Stops everything and closes the audio context. */
  close() {
    this.clear();
    void this.context?.close().catch(() => {});
    this.context = null;
  }

  /**
   * The level (0..1) of the audio under `key` now, 0 when not measured.
   * @param {string} key
   */
  level(key) {
    const meter = this.meters.get(key);
    if (!meter) return 0;
    const samples = this.samples && this.samples.length === meter.analyser.fftSize
      ? this.samples
      : (this.samples = new Float32Array(meter.analyser.fftSize));
    meter.analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    return Math.min(1, Math.sqrt(sum / samples.length) * Math.SQRT2);
  }

  /** The elements playing now, for tests and for apps that want to look. */
  get playing() {
    return [...this.elements.values()].filter((el) => !el.muted);
  }

  /**
   * @param {string} key
   * @param {MediaStream} stream
   */
  #measure(key, stream) {
    const current = this.meters.get(key);
    if (current?.stream === stream) return;
    current?.source.disconnect();
    try {
      this.context ??= new AudioContext();
      if (this.context.state === 'suspended') void this.context.resume().catch(() => {});
      const analyser = this.context.createAnalyser();
      analyser.fftSize = 2048;
      const source = this.context.createMediaStreamSource(stream);
      source.connect(analyser);
      this.meters.set(key, { source, analyser, stream });
    } catch {
      // No Web Audio (or no audio track yet): the level stays 0.
      this.meters.delete(key);
    }
  }

  /** @param {HTMLAudioElement} el */
  async #start(el) {
    try {
      await el.play();
    } catch (error) {
      if (/** @type {any} */ (error)?.name !== 'NotAllowedError' || this.waitingForGesture) return;
      // The autoplay policy wants a user gesture first: retry on the next one.
      this.waitingForGesture = true;
      for (const type of ['pointerdown', 'keydown']) globalThis.addEventListener?.(type, this.retry, { once: true, capture: true });
      this.host.blocked();
    }
  }
}
