// Opus tuned for speech. What a receiver writes in its SDP `a=fmtp` line for
// Opus (RFC 7587) tells the *sender* how to encode for it: `useinbandfec=1`
// (in-band forward error correction: a lost packet is rebuilt from the next
// one), `usedtx=1` (discontinuous transmission: next to nothing is sent in
// silence), `maxaveragebitrate` (a cap, in bit/s). The client writes these
// into every description it sends (what it asks its peers to send) and into
// every description it applies (so its own encoder follows the same
// options, whatever the peer asked). RED (`audio/red`, RFC 2198: each packet
// also carries the previous frame) is preferred over plain Opus with
// `setCodecPreferences` where the browser offers it.

/**
 * @typedef {{
 *   fec?: boolean,
 *   dtx?: boolean,
 *   red?: boolean | 'auto',
 *   maxBitrateKbps?: number | null,
 * }} OpusOptions
 *   `fec` (default on), `dtx` (default off), `red` (default on where the
 *   browser offers `audio/red`; `'auto'`: negotiated, but sent only while
 *   loss protection asks for it, protection.js), `maxBitrateKbps` (default
 *   none; Opus speech sounds good from about 24 kbit/s).
 */

/** Defaults for speech. */
export const OPUS_DEFAULTS = Object.freeze({ fec: true, dtx: false, red: true, maxBitrateKbps: null });

/**
 * Rewrites the Opus `a=fmtp` parameters of an SDP per `options`; other
 * codecs and lines are left as they are.
 * @param {string} sdp
 * @param {OpusOptions} [options]
 * @returns {string}
 */
export function tuneOpusSdp(sdp, options = {}) {
  const o = { ...OPUS_DEFAULTS, ...options };
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(eol);
  const opus = new Set();
  for (const line of lines) {
    const m = /^a=rtpmap:(\d+) opus\/48000/i.exec(line);
    if (m) opus.add(m[1]);
  }
  if (opus.size === 0) return sdp;
  /** @param {Map<string, string>} params */
  const apply = (params) => {
    if (o.fec) params.set('useinbandfec', '1');
    else params.delete('useinbandfec');
    if (o.dtx) params.set('usedtx', '1');
    else params.delete('usedtx');
    if (o.maxBitrateKbps) params.set('maxaveragebitrate', String(Math.round(o.maxBitrateKbps * 1000)));
    else params.delete('maxaveragebitrate');
  };
  const format = (/** @type {Map<string, string>} */ params) => [...params].map(([k, v]) => `${k}=${v}`).join(';');
  /** @type {string[]} */
  const out = [];
  for (const line of lines) {
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (fmtp && opus.has(fmtp[1])) {
      const params = new Map(
        fmtp[2].split(';').filter(Boolean).map((kv) => {
          const at = kv.indexOf('=');
          return /** @type {[string, string]} */ (at < 0 ? [kv.trim(), ''] : [kv.slice(0, at).trim(), kv.slice(at + 1).trim()]);
        }),
      );
      apply(params);
      out.push(`a=fmtp:${fmtp[1]} ${format(params)}`);
      continue;
    }
    out.push(line);
    const rtpmap = /^a=rtpmap:(\d+) opus\/48000/i.exec(line);
    if (rtpmap && !lines.some((l) => l.startsWith(`a=fmtp:${rtpmap[1]} `))) {
      const params = new Map();
      apply(params);
      if (params.size > 0) out.push(`a=fmtp:${rtpmap[1]} ${format(params)}`);
    }
  }
  return out.join(eol);
}

/**
 * Loss protection (protection.js) in a description we are about to apply:
 * with `red` true or false, RED or Opus first in the audio m-line (when
 * both are there), which is what our encoder sends; `ptimeMs` in the Opus
 * `a=fmtp` line (removed when null), the packet time our encoder uses.
 * @param {string} sdp
 * @param {import('./protection.js').ProtectionSettings} settings
 * @returns {string}
 */
export function protectSdp(sdp, settings) {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const opus = /^a=rtpmap:(\d+) opus\/48000/im.exec(sdp)?.[1];
  const red = /^a=rtpmap:(\d+) red\/48000/im.exec(sdp)?.[1];
  if (!opus) return sdp;
  return sdp
    .split(eol)
    .map((line) => {
      const m = /^(m=audio \S+ \S+) (.*)$/.exec(line);
      if (m && red && settings.red !== null) {
        const pts = m[2].split(' ');
        if (!pts.includes(red) || !pts.includes(opus)) return line;
        const first = settings.red ? [red, opus] : [opus, red];
        return `${m[1]} ${[...first, ...pts.filter((pt) => !first.includes(pt))].join(' ')}`;
      }
      const fmtp = new RegExp(`^a=fmtp:${opus} (.*)$`).exec(line);
      if (fmtp) {
        const params = fmtp[1].split(';').filter((kv) => kv && !/^\s*ptime=/.test(kv));
        if (settings.ptimeMs) params.push(`ptime=${settings.ptimeMs}`);
        return `a=fmtp:${opus} ${params.join(';')}`;
      }
      return line;
    })
    .join(eol);
}

/**
 * Puts `audio/red` first (then Opus, then the rest) on an audio transceiver
 * when `red` is on and the browser offers RED; otherwise leaves the browser's
 * order. Returns whether RED is preferred.
 * @param {RTCRtpTransceiver} transceiver
 * @param {OpusOptions} [options]
 */
export function preferRed(transceiver, options = {}) {
  const o = { ...OPUS_DEFAULTS, ...options };
  const codecs = globalThis.RTCRtpReceiver?.getCapabilities?.('audio')?.codecs ?? [];
  const red = codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/red');
  if (!o.red || red.length === 0 || typeof transceiver.setCodecPreferences !== 'function') return false;
  const opus = codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/opus');
  const rest = codecs.filter((c) => !red.includes(c) && !opus.includes(c));
  try {
    transceiver.setCodecPreferences([...red, ...opus, ...rest]);
    return true;
  } catch {
    return false;
  }
}

/**
 * For a link to the SFU: puts `audio/red` first (then Opus, then the rest)
 * when `red` is on, as `preferRed` does; with `red` off, leaves RED out of
 * the offer, so the node sends this receiver plain Opus (it strips RED to
 * its primary block for receivers that did not negotiate it). Returns
 * whether RED is preferred.
 * @param {RTCRtpTransceiver} transceiver
 * @param {OpusOptions} [options]
 */
export function redForSfu(transceiver, options = {}) {
  const o = { ...OPUS_DEFAULTS, ...options };
  if (o.red) return preferRed(transceiver, o);
  const codecs = globalThis.RTCRtpReceiver?.getCapabilities?.('audio')?.codecs ?? [];
  const withoutRed = codecs.filter((c) => c.mimeType.toLowerCase() !== 'audio/red');
  if (withoutRed.length === codecs.length || typeof transceiver.setCodecPreferences !== 'function') return false;
  try {
    transceiver.setCodecPreferences(withoutRed);
  } catch {
    // the browser's own order stays
  }
  return false;
}

/**
 * The Opus parameters an SDP asks for (from its first Opus `a=fmtp` line),
 * and whether RED comes first in its audio m-line: applied as the remote
 * description, they are how our encoder sends. (Chromium's `getStats()`
 * names the Opus inside RED as the codec, so RED is read from the SDP.)
 * @param {string | undefined} sdp
 * @returns {{red: boolean, fec: boolean, dtx: boolean, maxBitrateKbps: number | null} | null}
 */
export function opusParams(sdp) {
  const pt = /^a=rtpmap:(\d+) opus\/48000/im.exec(sdp ?? '')?.[1];
  if (!pt || !sdp) return null;
  const line = new RegExp(`^a=fmtp:${pt} (.*)$`, 'm').exec(sdp)?.[1] ?? '';
  const params = new Map(line.split(';').map((kv) => /** @type {[string, string]} */ (kv.trim().split('=', 2))));
  const cap = Number(params.get('maxaveragebitrate'));
  const first = /^m=audio \S+ \S+ (\d+)/m.exec(sdp)?.[1];
  const red = first !== undefined && new RegExp(`^a=rtpmap:${first} red/48000`, 'im').test(sdp);
  return {
    red,
    fec: params.get('useinbandfec') === '1',
    dtx: params.get('usedtx') === '1',
    maxBitrateKbps: Number.isFinite(cap) && cap > 0 ? cap / 1000 : null,
  };
}

/**
 * The packet time an SDP asks of the Opus encoder (its Opus `a=fmtp`
 * `ptime`, else an `a=ptime` line), in ms; null when it asks for none
 * (Chromium then sends 20 ms packets).
 * @param {string | undefined} sdp
 * @returns {number | null}
 */
export function opusPtime(sdp) {
  const pt = /^a=rtpmap:(\d+) opus\/48000/im.exec(sdp ?? '')?.[1];
  if (!pt || !sdp) return null;
  const fmtp = new RegExp(`^a=fmtp:${pt} .*\\bptime=(\\d+)`, 'm').exec(sdp)?.[1] ?? /^a=ptime:(\d+)/m.exec(sdp)?.[1];
  return fmtp ? Number(fmtp) : null;
}
