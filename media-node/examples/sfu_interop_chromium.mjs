// Chromium against the SFU: three pages publish their fake microphone and
// receive the others on their slots; prints each page's connection state,
// inbound-rtp stats per slot and last active-speakers event.
//
//   cargo run -p tincan-media-node --example sfu_interop   # prints FRONT <url>
//   FRONT=<url> node media-node/examples/sfu_interop_chromium.mjs
//
// (playwright-core from tests/browser's npm install; Debian's chromium.)
const { chromium } = await import(new URL('../../tests/browser/node_modules/playwright-core/index.mjs', import.meta.url).href);
const FRONT = process.env.FRONT;
const SLOTS = 3;
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [
  '--no-sandbox','--disable-gpu','--allow-loopback-in-peer-connection',
  '--use-fake-device-for-media-stream','--use-fake-ui-for-media-stream','--autoplay-policy=no-user-gesture-required'] });
async function participant(peer) {
  const page = await (await browser.newContext()).newPage();
  page.on('console', m => console.log(peer, 'console:', m.text()));
  await page.goto(FRONT + '/');
  await page.evaluate(async ({ peer, SLOTS }) => {
    const pc = new RTCPeerConnection();
    window.pc = pc; window.events = [];
    pc.ontrack = (e) => { const el = new Audio(); el.srcObject = new MediaStream([e.track]); el.play().catch(() => {}); };
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    pc.addTransceiver(mic.getAudioTracks()[0], { direction: 'sendonly' });
    for (let i = 0; i < SLOTS; i++) pc.addTransceiver('audio', { direction: 'recvonly' });
    const dc = pc.createDataChannel('tincan', { ordered: true });
    dc.onmessage = (e) => window.events.push(JSON.parse(e.data));
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(r => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
    const res = await fetch(`/join/room1/${peer}`, { method: 'POST', body: pc.localDescription.sdp });
    const answer = await res.text();
    if (!res.ok) throw new Error('join failed: ' + answer);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  }, { peer, SLOTS });
  return page;
}
const a = await participant('alice');
const b = await participant('bob');
const c = await participant('carol');
await new Promise(r => setTimeout(r, 6000));
for (const [name, page] of [['alice', a], ['bob', b], ['carol', c]]) {
  const out = await page.evaluate(async () => {
    const stats = await window.pc.getStats();
    const inbound = []; let outbound = null;
    stats.forEach(s => {
      if (s.type === 'inbound-rtp') inbound.push({ mid: s.mid, ssrc: s.ssrc, packets: s.packetsReceived, lost: s.packetsLost, audioLevel: s.audioLevel, concealed: s.concealedSamples, total: s.totalSamplesReceived });
      if (s.type === 'outbound-rtp') outbound = { packets: s.packetsSent };
    });
    return { state: window.pc.connectionState, inbound, outbound, events: window.events.length, last: window.events.at(-1) };
  });
  console.log(name, JSON.stringify(out));
}
await browser.close();
