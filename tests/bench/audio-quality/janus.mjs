// A small Janus VideoRoom client for the audio-quality bench's `janus` path
// (run in the page with `page.evaluate(janusCall, args)`): Janus's HTTP API
// with long polling (https://janus.conf.meetecho.com/docs/rest.html), no
// trickle (each side sends its description once ICE gathering is complete).
// Debian's `janus` package does not ship `janus.js` (that is
// `libjs-janus-gateway`, which also wants webrtc-adapter), and the bench
// needs only this much of it.
//
// `speaker`: creates the room (Opus, in-band FEC on, DTX off: the project
// client's defaults) and publishes its microphone, RED first among its
// codecs as the project client does; returns its publisher id.
// `listener`: subscribes to that feed. Both connect through TURN only
// (`iceTransportPolicy: 'relay'`), with the iceServers given (the
// listener's are rewritten to the impairment relay by the bench's init
// script, which wraps RTCPeerConnection). The connection is kept in
// `globalThis.__pcs` for the bench's getStats.

/**
 * @param {{ base: string, role: 'speaker' | 'listener', room: number, feed?: number, iceServers: RTCIceServer[] }} args
 * @returns {Promise<{ id?: number, codecs: string }>}
 */
export async function janusCall({ base, role, room, feed, iceServers }) {
  const tx = () => Math.random().toString(36).slice(2);
  /** @type {any[]} */
  const events = [];
  /** @type {(() => void)[]} */
  const waiters = [];
  const post = async (/** @type {string} */ url, /** @type {any} */ body) => {
    const transaction = tx();
    const res = await fetch(url, { method: 'POST', body: JSON.stringify({ ...body, transaction }) });
    const reply = await res.json();
    if (reply.janus === 'error') throw new Error(`janus: ${JSON.stringify(reply.error)}`);
    return { reply, transaction };
  };
  const session = (await post(base, { janus: 'create' })).reply.data.id;
  const sbase = `${base}/${session}`;
  const handle = (await post(sbase, { janus: 'attach', plugin: 'janus.plugin.videoroom' })).reply.data.id;
  // The long poll (also Janus's keep-alive) runs as long as the page.
  (async () => {
    for (;;) {
      try {
        const res = await fetch(`${sbase}?maxev=10&rid=${Date.now()}`);
        const got = await res.json();
        for (const e of Array.isArray(got) ? got : [got]) events.push(e);
        waiters.splice(0).forEach((w) => w());
      } catch {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();
  /** A plugin request: the synchronous answer, or the event that answers it. */
  const request = async (/** @type {any} */ body, /** @type {any} */ jsep = undefined) => {
    const { reply, transaction } = await post(`${sbase}/${handle}`, { janus: 'message', body, ...(jsep ? { jsep } : {}) });
    let event = reply;
    if (reply.janus === 'ack') {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const i = events.findIndex((e) => e.transaction === transaction && e.janus === 'event');
        if (i >= 0) {
          event = events.splice(i, 1)[0];
          break;
        }
        if (Date.now() > deadline) throw new Error(`janus: no answer to ${body.request}`);
        await new Promise((r) => {
          waiters.push(() => r(undefined));
          setTimeout(r, 1000);
        });
      }
    }
    const data = event.plugindata?.data ?? {};
    if (data.error) throw new Error(`janus ${body.request}: ${data.error}`);
    return { data, jsep: event.jsep };
  };
  const gathered = (/** @type {RTCPeerConnection} */ pc) =>
    new Promise((resolve, reject) => {
      const done = () => pc.iceGatheringState === 'complete' && resolve(undefined);
      pc.addEventListener('icegatheringstatechange', done);
      done();
      setTimeout(() => reject(new Error('ICE gathering did not complete')), 15_000);
    });
  const codecsOf = (/** @type {string} */ sdp) =>
    [...sdp.matchAll(/^a=(?:rtpmap|fmtp):\d+ ([^\r\n]+)/gm)].map((m) => m[1]).join(', ');

  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
  /** @type {any} */ (globalThis).__pcs = [pc];
  if (role === 'speaker') {
    await request({ request: 'create', room, publishers: 6, audiocodec: 'opus', opus_fec: true, opus_dtx: false, audiolevel_ext: true });
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
    const transceiver = pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
    const codecs = RTCRtpSender.getCapabilities('audio')?.codecs ?? [];
    const red = codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/red');
    if (red.length) transceiver.setCodecPreferences([...red, ...codecs.filter((c) => !red.includes(c))]);
    const joined = await request({ request: 'join', ptype: 'publisher', room, display: 'speaker' });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const { jsep } = await request({ request: 'publish', audio: true, video: false }, { type: 'offer', sdp: pc.localDescription?.sdp, trickle: false });
    await pc.setRemoteDescription(jsep);
    // Janus lists a feed once its media is up: subscribing before fails.
    await new Promise((resolve, reject) => {
      const up = () => pc.connectionState === 'connected' && resolve(undefined);
      pc.addEventListener('connectionstatechange', up);
      up();
      setTimeout(() => reject(new Error(`publisher not connected (${pc.connectionState})`)), 30_000);
    });
    return { id: joined.data.id, codecs: codecsOf(jsep.sdp) };
  }
  // Played as the project's page plays remote audio (Chromium decodes a
  // remote track for Web Audio only while a media element plays it).
  pc.addEventListener('track', (e) => {
    const audio = new Audio();
    audio.srcObject = new MediaStream([e.track]);
    document.body.append(audio);
    audio.play().catch(() => {});
  });
  const { jsep } = await request({ request: 'join', ptype: 'subscriber', room, streams: [{ feed }] });
  await pc.setRemoteDescription(jsep);
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  await request({ request: 'start', room }, { type: 'answer', sdp: pc.localDescription?.sdp, trickle: false });
  return { codecs: codecsOf(jsep.sdp) };
}
