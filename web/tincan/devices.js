// Devices during a call: the output device of the elements that play remote
// audio (`setSinkId`), and a watch on the microphone.
//
// The microphone is replaced when it ends: the track's `ended` event (the
// browser fires it when a device is unplugged or permission is revoked), a
// once-a-second look at `readyState` (a `stop()` fires no event), and
// `devicechange` (its device left the list). The client then reports
// `microphone-ended`, opens the default microphone with the same processing
// (echo cancellation, noise suppression, gain control), and sends it on
// every connection with `replaceTrack` (no renegotiation).

import { TincanError } from './session.js';

/**
 * @typedef {{
 *   inCall: () => boolean,
 *   localStream: () => MediaStream | null,
 *   useStream: (stream: MediaStream) => Promise<void>,
 *   emit: (type: string, detail: object) => void,
 * }} DevicesHost
 */

export class Devices {
  /** @param {DevicesHost} host */
  constructor(host) {
    this.host = host;
    /** @type {string} the output device of every attached element ('' = default) */
    this.outputDeviceId = '';
    /** @type {Set<HTMLMediaElement>} */
    this.audioElements = new Set();
    /** @type {Promise<void> | null} a microphone recovery under way */
    this.recovering = null;
    this.onTrackEnded = () => void this.recoverMicrophone();
    globalThis.navigator?.mediaDevices?.addEventListener?.('devicechange', () => void this.checkMicrophone());
  }

  /**
   * @template {HTMLMediaElement} E
   * @param {E} element
   * @returns {E}
   */
  attachAudio(element) {
    this.audioElements.add(element);
    if (this.outputDeviceId && typeof element.setSinkId === 'function') {
      element.setSinkId(this.outputDeviceId).catch(() => {});
    }
    return element;
  }

  /** @param {HTMLMediaElement} element */
  detachAudio(element) {
    this.audioElements.delete(element);
  }

  /** @param {string} deviceId */
  async setOutputDevice(deviceId) {
    if (typeof globalThis.HTMLMediaElement?.prototype.setSinkId !== 'function') {
      throw new TincanError('not-supported', 'This browser cannot choose the audio output device.');
    }
    await Promise.all([...this.audioElements].map((element) => element.setSinkId(deviceId)));
    this.outputDeviceId = deviceId;
    this.host.emit('output-device', { deviceId });
  }

  /**
   * Moves the `ended` watch from the old microphone stream to the new one.
   * @param {MediaStream | null} before
   * @param {MediaStream | null} after
   */
  watch(before, after) {
    for (const track of before?.getAudioTracks() ?? []) track.removeEventListener('ended', this.onTrackEnded);
    for (const track of after?.getAudioTracks() ?? []) track.addEventListener('ended', this.onTrackEnded);
  }

  /** Replaces the microphone if it ended or its device is gone. */
  async checkMicrophone() {
    const track = this.host.localStream()?.getAudioTracks()[0];
    if (!track || this.recovering || !this.host.inCall()) return;
    if (track.readyState === 'ended') return this.recoverMicrophone();
    const deviceId = track.getSettings().deviceId;
    if (!deviceId || deviceId === 'default' || !globalThis.navigator?.mediaDevices?.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices().catch(() => null);
    if (devices && !devices.some((d) => d.kind === 'audioinput' && d.deviceId === deviceId)) return this.recoverMicrophone();
  }

  /** Opens the default microphone with the old track's processing and sends it. */
  recoverMicrophone() {
    const old = this.host.localStream()?.getAudioTracks()[0];
    if (!old || this.recovering || !this.host.inCall()) return this.recovering ?? Promise.resolve();
    this.recovering = (async () => {
      const settings = old.getSettings();
      this.host.emit('microphone-ended', { deviceId: settings.deviceId ?? null, label: old.label });
      /** @type {MediaTrackConstraints} */
      const constraints = {};
      for (const key of /** @type {const} */ (['echoCancellation', 'noiseSuppression', 'autoGainControl'])) {
        if (typeof settings[key] === 'boolean') constraints[key] = settings[key];
      }
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: constraints, video: false });
        if (!this.host.inCall()) {
          stream.getTracks().forEach((t) => t.stop());
          return;
        }
        old.stop();
        await this.host.useStream(stream);
      } catch (error) {
        this.host.emit('error', {
          code: 'microphone-lost',
          message: `No microphone to switch to: ${/** @type {Error} */ (error)?.message ?? error}`,
          fatal: false,
        });
      }
    })().finally(() => {
      this.recovering = null;
    });
    return this.recovering;
  }
}
