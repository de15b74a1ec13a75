// A consumer of the packed `tincan-client` package: typed against its
// declaration files (tsc --strict --noEmit), then compiled and run in
// Chromium by package.test.js, where an import map points `tincan-client` at
// the unpacked tarball. No casts: the event map types every `detail`.
import {
  TincanClient,
  TincanError,
  ROOM_ID,
  precallCheck,
  classifyQuality,
  type Joined,
  type PeerInfo,
  type Participant,
  type ErrorCode,
  type RoomMode,
  type CallState,
  type TincanEventMap,
} from 'tincan-client';
import type { PeerStats } from 'tincan-client/stats';

export interface CallResult {
  self: PeerInfo;
  others: string[];
}

/** Signs in and joins `room`; the client opens the microphone and plays whoever is there. */
export async function placeCall(username: string, password: string, room: string): Promise<CallResult> {
  if (!ROOM_ID.test(room)) throw new TincanError('bad-request', `bad room ${room}`);
  const client = new TincanClient();
  (globalThis as unknown as { tincanApp: { client: TincanClient } }).tincanApp = { client };
  await client.session.login(username, password);
  const speaking = new Set<string>();
  client.addEventListener('speaking-changed', (e) => {
    const p: Participant = e.detail.participant;
    if (e.detail.speaking) speaking.add(p.id);
    else speaking.delete(p.id);
  });
  client.on('participant-updated', ({ participant, changed }) => {
    if (changed.includes('path')) console.log(participant.displayName, 'now via', participant.path);
  });
  client.on('mode', ({ mode }) => {
    const m: RoomMode = mode;
    console.log('room mode', m);
  });
  client.on('protection-changed', ({ peerId, level, previous, red, ptimeMs }) => {
    const l: 0 | 1 | 2 = level;
    console.log(peerId ?? 'sfu', previous, '->', l, red, ptimeMs);
  });
  client.on('error', ({ code }) => {
    const c: ErrorCode = code;
    if (c === 'room-full' || c === 'rate-limited') console.warn(c);
  });
  const joined: Joined = await client.join(room);
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
  const state: CallState = client.state;
  const levels = [...client.participants.values()].map((p) => `${p.displayName} ${p.level.toFixed(2)} ${p.speaking} ${p.quality ?? '-'} ${p.path ?? '-'}`);
  const listener = (e: CustomEvent<TincanEventMap['peer-muted']>) => console.log(e.detail.peerId, e.detail.muted);
  client.addEventListener('peer-muted', listener);
  client.removeEventListener('peer-muted', listener);
  const stop = client.on('track', ({ peerId, stream }) => console.log(peerId, stream.id));
  stop();
  try {
    await new TincanClient({ playAudio: false }).join('x', { listenOnly: true });
  } catch (error) {
    if (error instanceof TincanError && error.code === 'room-full') console.warn('full');
  }
  return `${verdict} ${quality} ${speaker} ${negotiated?.fec} ${client.connectionQuality('x') ?? '-'} ${state} ${levels.join(',')}`;
}

/** The summarized stats of every link, typed by the package. */
export async function linkStats(client: TincanClient): Promise<PeerStats[]> {
  return Promise.all([...client.peers.values()].map((link) => link.stats()));
}

(globalThis as unknown as { placeCall: typeof placeCall }).placeCall = placeCall;
