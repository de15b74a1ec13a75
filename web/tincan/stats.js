// Turns an RTCStatsReport into the few numbers a person (or a test) wants:
// round-trip time, jitter, loss, bitrate each way, jitter-buffer delay,
// audio energy, and whether the selected ICE path is direct or relayed.

/**
 * @typedef {{
 *   at: number,
 *   rttMs: number | null,
 *   jitterMs: number | null,
 *   jitterBufferMs: number | null,
 *   lossPct: number | null,
 *   packetsReceived: number,
 *   packetsLost: number,
 *   packetsSent: number,
 *   bytesReceived: number,
 *   bytesSent: number,
 *   inKbps: number | null,
 *   outKbps: number | null,
 *   totalAudioEnergy: number,
 *   audioLevel: number | null,
 *   path: 'direct' | 'relayed' | null,
 *   localCandidateType: string | null,
 *   remoteCandidateType: string | null,
 *   protocol: string | null,
 *   jbDelaySum: number,
 *   jbEmitted: number,
 *   lostTotal: number,
 *   receivedTotal: number,
 *   sendCodec: string | null,
 *   recvCodec: string | null,
 * }} PeerStats
 *   `sendCodec`/`recvCodec`: the codec in use each way (`audio/opus`, or
 *   `audio/red` carrying Opus)
 */

/**
 * @param {RTCStatsReport} report
 * @param {PeerStats | null} previous  the last summary, for rates over the interval
 * @returns {Promise<PeerStats>}
 */
export async function summarizeStats(report, previous) {
  /** @type {Map<string, any>} */
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let inbound = null;
  let outbound = null;
  let remoteInbound = null;
  let pair = null;
  for (const s of byId.values()) {
    if (s.kind !== undefined && s.kind !== 'audio') continue;
    if (s.type === 'inbound-rtp') inbound = s;
    else if (s.type === 'outbound-rtp') outbound = s;
    else if (s.type === 'remote-inbound-rtp') remoteInbound = s;
  }
  for (const s of byId.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) ?? null;
  }
  if (!pair) {
    for (const s of byId.values()) {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    }
  }
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  const at = performance.now();
  const seconds = previous ? (at - previous.at) / 1000 : 0;
  const rate = (/** @type {number} */ now, /** @type {number | undefined} */ before) =>
    previous && seconds > 0 && before !== undefined ? Math.max(0, ((now - before) * 8) / seconds / 1000) : null;

  const bytesReceived = inbound?.bytesReceived ?? 0;
  const bytesSent = outbound?.bytesSent ?? 0;
  const receivedTotal = inbound?.packetsReceived ?? 0;
  const lostTotal = Math.max(0, inbound?.packetsLost ?? 0);
  const jbDelaySum = inbound?.jitterBufferDelay ?? 0;
  const jbEmitted = inbound?.jitterBufferEmittedCount ?? 0;

  // Loss and jitter-buffer delay over the last interval, not since the start.
  let lossPct = null;
  let jitterBufferMs = null;
  if (inbound) {
    const dLost = lostTotal - (previous?.lostTotal ?? 0);
    const dRecv = receivedTotal - (previous?.receivedTotal ?? 0);
    lossPct = dLost + dRecv > 0 ? (100 * Math.max(0, dLost)) / (dLost + dRecv) : 0;
    const dEmitted = jbEmitted - (previous?.jbEmitted ?? 0);
    const dDelay = jbDelaySum - (previous?.jbDelaySum ?? 0);
    jitterBufferMs = dEmitted > 0 ? (1000 * dDelay) / dEmitted : jbEmitted > 0 ? (1000 * jbDelaySum) / jbEmitted : null;
  }
  const rttSeconds = pair?.currentRoundTripTime ?? remoteInbound?.roundTripTime ?? null;
  /** @type {'direct' | 'relayed' | null} */
  let path = null;
  if (local && remote) path = local.candidateType === 'relay' || remote.candidateType === 'relay' ? 'relayed' : 'direct';

  /** @returns {string | null} */
  const codecOf = (/** @type {any} */ rtp) => {
    const codec = rtp?.codecId ? byId.get(rtp.codecId) : null;
    return codec?.mimeType ?? null;
  };

  return {
    at,
    rttMs: rttSeconds === null ? null : rttSeconds * 1000,
    jitterMs: inbound?.jitter === undefined ? null : inbound.jitter * 1000,
    jitterBufferMs,
    lossPct,
    packetsReceived: receivedTotal,
    packetsLost: lostTotal,
    packetsSent: outbound?.packetsSent ?? 0,
    bytesReceived,
    bytesSent,
    inKbps: rate(bytesReceived, previous?.bytesReceived),
    outKbps: rate(bytesSent, previous?.bytesSent),
    totalAudioEnergy: inbound?.totalAudioEnergy ?? 0,
    audioLevel: inbound?.audioLevel ?? null,
    path,
    localCandidateType: local?.candidateType ?? null,
    remoteCandidateType: remote?.candidateType ?? null,
    protocol: local?.relayProtocol ?? local?.protocol ?? null,
    jbDelaySum,
    jbEmitted,
    lostTotal,
    receivedTotal,
    sendCodec: codecOf(outbound),
    recvCodec: codecOf(inbound),
  };
}
