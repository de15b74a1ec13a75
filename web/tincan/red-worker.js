// The worker behind red-boost.js: an encoded transform on one audio sender
// that rewrites the browser's RED payloads (RFC 2198, which carry the
// previous Opus frame) to carry up to three earlier frames, as many as the
// main thread asks for (`{level}`), or none at level 0 (a congested link).
// Browsers decode RED with any number of blocks; they only ever send one.
// Frames that are not RED, and every frame at level 1, pass unchanged. The RED payload type comes from the main
// thread (`{redPt}`), read from the negotiated parameters.
//
// A RED payload: a 4-byte header per earlier block (F bit, payload type,
// 14-bit timestamp offset, 10-bit length), a 1-byte header for the primary,
// then the blocks in the same order, the primary last.

const MAX_LEVEL = 3;
const MAX_OFFSET = 0x3fff;
const MAX_BLOCK = 0x3ff;

const state = {
  level: 1,
  /** @type {number | null} */ redPt: null,
  /** @type {Array<{ts: number, data: Uint8Array}>} the last primaries, oldest first */
  recent: [],
};

/**
 * The primary block of a RED payload and its payload type; null when the
 * payload is malformed.
 * @param {Uint8Array} data
 */
function primaryOf(data) {
  let at = 0;
  let blocks = 0;
  for (;;) {
    if (at >= data.length) return null;
    const first = data[at];
    if ((first & 0x80) === 0) {
      const start = at + 1 + blocks;
      if (start >= data.length) return null;
      return { pt: first & 0x7f, data: data.subarray(start) };
    }
    if (at + 4 > data.length) return null;
    blocks += ((data[at + 2] & 0x03) << 8) | data[at + 3];
    at += 4;
  }
}

/**
 * RED carrying `primary` after up to `level` earlier frames RED can still
 * express (offset under 2^14 samples, block under 1 KiB).
 * @param {number} ts
 * @param {number} pt
 * @param {Uint8Array} primary
 * @param {number} level
 */
function build(ts, pt, primary, level) {
  const usable = state.recent.filter((f) => {
    const offset = (ts - f.ts) >>> 0;
    return offset >= 1 && offset <= MAX_OFFSET && f.data.length <= MAX_BLOCK;
  });
  const earlier = level > 0 ? usable.slice(-level) : [];
  const size = 1 + primary.length + earlier.reduce((n, f) => n + 4 + f.data.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const f of earlier) {
    const word = ((((ts - f.ts) >>> 0) << 10) | f.data.length) >>> 0;
    out[at] = 0x80 | (pt & 0x7f);
    out[at + 1] = (word >>> 16) & 0xff;
    out[at + 2] = (word >>> 8) & 0xff;
    out[at + 3] = word & 0xff;
    at += 4;
  }
  out[at++] = pt & 0x7f;
  for (const f of earlier) {
    out.set(f.data, at);
    at += f.data.length;
  }
  out.set(primary, at);
  return out;
}

/** @param {any} frame an RTCEncodedAudioFrame */
function boost(frame) {
  const meta = frame.getMetadata();
  if (state.redPt === null || meta.payloadType !== state.redPt) return;
  const ts = (meta.rtpTimestamp ?? frame.timestamp) >>> 0;
  const primary = primaryOf(new Uint8Array(frame.data));
  if (!primary) return;
  const copy = primary.data.slice();
  if (state.level !== 1) frame.data = build(ts, primary.pt, copy, state.level).buffer;
  const last = state.recent[state.recent.length - 1];
  if (!last || (((ts - last.ts) >>> 0) - 1) >>> 0 < 0x7fffffff) {
    state.recent.push({ ts, data: copy });
    if (state.recent.length > MAX_LEVEL) state.recent.shift();
  }
}

/** @param {MessageEvent} event */
self.onmessage = (event) => {
  const { level, redPt } = event.data ?? {};
  if (typeof level === 'number') state.level = Math.max(0, Math.min(MAX_LEVEL, Math.floor(level)));
  if (redPt === null || typeof redPt === 'number') state.redPt = redPt;
};

/** @param {any} event an RTCTransformEvent */
// @ts-ignore: onrtctransform exists in workers of browsers with RTCRtpScriptTransform
self.onrtctransform = (event) => {
  const { readable, writable } = event.transformer;
  readable
    .pipeThrough(
      new TransformStream({
        transform(frame, controller) {
          try {
            boost(frame);
          } catch {
            // a frame we cannot read goes as it came
          }
          controller.enqueue(frame);
        },
      }),
    )
    .pipeTo(writable)
    .catch(() => {});
};
