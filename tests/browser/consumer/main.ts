// A consumer of the packed `tincan-client` package: typed against its
// declaration files (tsc --noEmit), then compiled and run in Chromium by
// package.test.js, where an import map points `tincan-client` at the
// unpacked tarball.
import { TincanClient, TincanError, ROOM_ID, precallCheck, classifyQuality, type Joined, type PeerInfo } from 'tincan-client';
import type { PeerStats } from 'tincan-client/stats';

export interface CallResult {
  self: PeerInfo;
  others: string[];
}

/** Signs in, joins `room` with the microphone and plays whoever is there. */
export async function placeCall(username: string, password: string, room: string): Promise<CallResult> {
  if (!ROOM_ID.test(room)) throw new TincanError('bad-request', `bad room ${room}`);
  const client = new TincanClient();
  (globalThis as unknown as { tincanApp: { client: TincanClient } }).tincanApp = { client };
  await client.session.login(username, password);
  const mic: MediaStream = await navigator.mediaDevices.getUserMedia({ audio: true });
  client.addEventListener('track', (e) => {
    const { stream } = (e as CustomEvent<{ peerId: string; stream: MediaStream }>).detail;
    const audio = new Audio();
    audio.srcObject = stream;
    void audio.play();
  });
  const joined: Joined = await client.join(room, { stream: mic });
  return { self: joined.self, others: joined.peers.map((p) => p.displayName) };
}

/** The SDK's other entry points, as a consumer would use them (type-checked only). */
export async function extras(client: TincanClient): Promise<string> {
  const check = await precallCheck({ session: client.session, micMs: 500 });
  const verdict: 'ready' | 'warning' | 'blocked' = check.verdict;
  await client.setOutputDevice('');
  const quality = classifyQuality({ lossPct: 0, rttMs: 10, jitterMs: 1, connected: true, msSinceLastPacket: 0 });
  const speaker: string | null = client.activeSpeaker;
  const negotiated = [...client.peers.values()][0]?.negotiated();
  return `${verdict} ${quality} ${speaker} ${negotiated?.fec} ${client.connectionQuality('x') ?? '-'}`;
}

/** The summarized stats of every link, typed by the package. */
export async function linkStats(client: TincanClient): Promise<PeerStats[]> {
  return Promise.all([...client.peers.values()].map((link) => link.stats()));
}

(globalThis as unknown as { placeCall: typeof placeCall }).placeCall = placeCall;
