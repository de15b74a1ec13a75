// The pre-call check: can the microphone be heard, and can a TURN relay be
// reached (so a call works even where a direct path is blocked)?
//
// Microphone: opens it (or uses the stream given) and reads its level with
// an AnalyserNode for `micMs`; any peak over MIC_HEARD_LEVEL counts as heard.
// TURN: fetches `/turn-credentials`, then gathers ICE candidates with
// `iceTransportPolicy: 'relay'`: a `relay` candidate means the relay
// allocated an address for us, so media could flow through it.
//
// Verdict: `ready` (heard and relay reachable), `warning` (the microphone
// is silent, or no relay: calls still work where a direct path exists),
// `blocked` (no microphone, or permission refused).

export const MIC_HEARD_LEVEL = 0.01;

/**
 * @typedef {{
 *   verdict: 'ready' | 'warning' | 'blocked',
 *   microphone: {ok: boolean, peakLevel: number, label: string, error: string | null},
 *   turn: {ok: boolean, protocols: string[], ms: number | null, error: string | null},
 *   messages: string[],
 * }} PrecallReport
 */

/**
 * @param {{
 *   session: {request: (method: string, path: string) => Promise<any>},
 *   stream?: MediaStream | null,
 *   micMs?: number,
 *   turnTimeoutMs?: number,
 *   onLevel?: (level: number) => void,
 * }} options  `onLevel` gets the microphone level (0..1) about 20 times a second
 * @returns {Promise<PrecallReport>}
 */
export async function precallCheck(options) {
  const [microphone, turn] = await Promise.all([checkMicrophone(options), checkTurn(options)]);
  /** @type {string[]} */
  const messages = [];
  if (microphone.error) messages.push(`Microphone unavailable: ${microphone.error}`);
  else if (!microphone.ok) messages.push('Your microphone is on but we hear nothing: check that it is not muted.');
  if (!turn.ok) messages.push('The relay server is unreachable: calls may fail on networks that block direct connections.');
  const verdict = microphone.error ? 'blocked' : microphone.ok && turn.ok ? 'ready' : 'warning';
  return { verdict, microphone, turn, messages };
}

/**
 * @param {{stream?: MediaStream | null, micMs?: number, onLevel?: (level: number) => void}} options
 * @returns {Promise<PrecallReport['microphone']>}
 */
async function checkMicrophone(options) {
  let stream = options.stream ?? null;
  const own = !stream;
  try {
    stream ??= await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (error) {
    const e = /** @type {Error} */ (error);
    return { ok: false, peakLevel: 0, label: '', error: e?.name === 'NotAllowedError' ? 'permission refused' : e?.message ?? String(error) };
  }
  const track = stream.getAudioTracks()[0];
  let peak = 0;
  const context = new AudioContext();
  try {
    await context.resume().catch(() => {});
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const until = performance.now() + (options.micMs ?? 1500);
    while (performance.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const level = Math.min(1, Math.sqrt(sum / samples.length) * 3);
      peak = Math.max(peak, level);
      options.onLevel?.(level);
    }
  } finally {
    context.close().catch(() => {});
    if (own) stream.getTracks().forEach((t) => t.stop());
  }
  return { ok: peak > MIC_HEARD_LEVEL, peakLevel: peak, label: track?.label ?? '', error: null };
}

/**
 * @param {{session: {request: (method: string, path: string) => Promise<any>}, turnTimeoutMs?: number}} options
 * @returns {Promise<PrecallReport['turn']>}
 */
async function checkTurn(options) {
  const started = performance.now();
  /** @type {RTCIceServer[]} */
  let iceServers;
  try {
    iceServers = (await options.session.request('GET', '/turn-credentials'))?.iceServers ?? [];
  } catch (error) {
    return { ok: false, protocols: [], ms: null, error: /** @type {Error} */ (error)?.message ?? String(error) };
  }
  if (iceServers.length === 0) return { ok: false, protocols: [], ms: null, error: 'no relay configured' };
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
  /** @type {Set<string>} */
  const protocols = new Set();
  try {
    pc.createDataChannel('precall');
    const done = new Promise((resolve) => {
      const timer = setTimeout(resolve, options.turnTimeoutMs ?? 5000);
      pc.onicecandidate = ({ candidate }) => {
        if (candidate === null) {
          clearTimeout(timer);
          resolve(undefined);
        } else if (candidate.type === 'relay') {
          // One relay address is proof enough: stop there.
          protocols.add(/** @type {any} */ (candidate).relayProtocol ?? candidate.protocol ?? 'udp');
          clearTimeout(timer);
          resolve(undefined);
        }
      };
    });
    await pc.setLocalDescription();
    await done;
  } finally {
    pc.close();
  }
  const ok = protocols.size > 0;
  return { ok, protocols: [...protocols], ms: ok ? performance.now() - started : null, error: ok ? null : 'no relay candidate' };
}
