// Order-proof negotiation, without a server: two PeerLinks in one page joined
// by a relay that delays every payload at random (seeded), so candidates
// overtake their descriptions, both sides restart ICE at once, old
// descriptions are delivered again late, one side rebuilds its connection,
// and an offer is lost. Every round must end connected with audio flowing.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { launch, closeAll } from './helpers.js';

afterEach(closeAll);

/**
 * Runs in the page: the harness, then the rounds for one seed. Returns what
 * the rounds saw.
 * @param {number} seed
 */
async function rounds(seed) {
  const { PeerLink } = await import('/tincan/peer.js');
  // mulberry32: a small seeded PRNG, so a failing seed can be replayed.
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  /** @type {Record<string, any>} */
  const links = {};
  /** @type {Array<{from: string, to: string, data: any}>} */
  const sent = [];
  // Delays per payload kind: descriptions slow, candidates fast, so
  // candidates usually arrive first.
  let delays = { description: [0, 200], candidate: [0, 200] };
  /** @type {string[]} negotiation errors the links reported */
  const errors = [];
  const deliver = (/** @type {string} */ to, /** @type {any} */ data) => {
    const link = links[to];
    if (link && !link.closed) link.handleSignal(structuredClone(data));
  };
  let relay = (/** @type {string} */ from, /** @type {string} */ to, /** @type {any} */ data) => {
    sent.push({ from, to, data: structuredClone(data) });
    const [lo, hi] = data.description ? delays.description : delays.candidate;
    setTimeout(() => deliver(to, data), lo + random() * (hi - lo));
  };
  const make = (/** @type {string} */ self, /** @type {string} */ other, /** @type {boolean} */ passive) => {
    const link = new PeerLink({
      selfId: self,
      peer: { peerId: other, userId: other, displayName: other, muted: false },
      rtcConfig: {},
      localStream: mic,
      passive,
      sendSignal: (data) => {
        if (links[self] === link) relay(self, other, data);
      },
    });
    link.addEventListener('error', (/** @type {any} */ e) => errors.push(String(e.detail?.error)));
    // What TincanClient does when the peer rebuilt its side.
    link.addEventListener('remote-restarted', (/** @type {any} */ e) => {
      if (links[self] !== link) return;
      const held = link.takeHeldCandidates();
      link.close();
      const isOffer = e.detail.data.description?.type === 'offer';
      const fresh = make(self, other, isOffer);
      fresh.holdCandidates(held);
      if (isOffer) fresh.handleSignal(e.detail.data);
    });
    links[self] = link;
    return link;
  };
  const packets = async (/** @type {any} */ link) => {
    let n = 0;
    (await link.pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') n = s.packetsReceived ?? 0;
    });
    return n;
  };
  /** Both connected, stable, and receiving more audio than `before`. */
  const flowing = async (/** @type {string} */ what, timeoutMs = 20_000) => {
    const start = [await packets(links.a), await packets(links.b)];
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const a = links.a;
      const b = links.b;
      const ok =
        a.pc.connectionState === 'connected' &&
        b.pc.connectionState === 'connected' &&
        a.pc.signalingState === 'stable' &&
        b.pc.signalingState === 'stable' &&
        (await packets(a)) > start[0] + 10 &&
        (await packets(b)) > start[1] + 10;
      if (ok) return;
      if (performance.now() > deadline) {
        throw new Error(
          `seed ${seed}, ${what}: a ${a.pc.connectionState}/${a.pc.signalingState}, b ${b.pc.connectionState}/${b.pc.signalingState}`,
        );
      }
      await sleep(100);
    }
  };
  const ufrag = (/** @type {any} */ link) => /a=ice-ufrag:(\S+)/.exec(link.pc.localDescription?.sdp ?? '')?.[1];
  const report = {};
  try {
    // 1. Set-up: the newcomer "a" offers, "b" waits; candidates overtake descriptions.
    delays = { description: [150, 300], candidate: [0, 60] };
    make('b', 'a', true);
    make('a', 'b', false);
    await flowing('set-up');
    report.heldAtSetup = links.a.candidatesHeld + links.b.candidatesHeld;

    // 2. Both sides restart ICE in the same instant, everything reordered.
    delays = { description: [0, 250], candidate: [0, 250] };
    const before = [ufrag(links.a), ufrag(links.b)];
    links.a.restartIce();
    links.b.restartIce();
    await flowing('glare restart');
    report.ufragsChanged = ufrag(links.a) !== before[0] && ufrag(links.b) !== before[1];

    // 3. Old descriptions and candidates arrive again, late: dropped, no harm.
    const staleBefore = links.a.staleDropped + links.b.staleDropped;
    const old = sent.filter((m) => m.data.description).slice(0, 4);
    for (const m of old) deliver(m.to, m.data);
    for (const m of sent.filter((x) => x.data.candidate).slice(0, 4)) deliver(m.to, m.data);
    await sleep(500);
    report.staleDropped = links.a.staleDropped + links.b.staleDropped - staleBefore;
    report.staleReplayed = old.length;
    await flowing('after stale replays');

    // 4. "b" rebuilds its connection (new link id) and offers: "a" follows.
    delays = { description: [50, 200], candidate: [0, 100] };
    const aBefore = links.a.localId;
    links.b.close();
    make('b', 'a', false);
    await flowing('after the peer rebuilt its side');
    report.aRebuilt = links.a.localId !== aBefore;

    // 5. An offer is lost on the way (a socket died under it): "a" makes it again.
    if (seed === 1) {
      let dropped = 0;
      const send = relay;
      relay = (from, to, data) => {
        if (from === 'a' && data.description?.type === 'offer' && dropped === 0) {
          dropped += 1;
          return;
        }
        send(from, to, data);
      };
      links.a.restartIce();
      await flowing('after a lost offer', 30_000);
      await sleep(500);
      report.offersResent = links.a.offersResent;
      report.lostOffers = dropped;

      // 6. A fresh pair whose first answer is lost (the answerer's socket was
      // cut right after it answered): the impolite newcomer "b" sends its
      // offer again; "a", which applied the first one, accepts it (a rolled
      // back and re-made offer would number its m-lines anew and be refused).
      errors.length = 0;
      let answersDropped = 0;
      relay = (from, to, data) => {
        if (from === 'a' && data.description?.type === 'answer' && answersDropped === 0) {
          answersDropped += 1;
          return;
        }
        send(from, to, data);
      };
      links.a.close();
      links.b.close();
      make('a', 'b', true);
      make('b', 'a', false);
      await flowing('after a lost first answer', 40_000);
      report.firstAnswersLost = answersDropped;
      report.errors = [...errors];
    }
    return report;
  } finally {
    for (const link of Object.values(links)) link.close();
    for (const t of mic.getTracks()) t.stop();
  }
}

test('negotiation survives reordered, late and stale signaling (3 seeds)', { timeout: 180_000 }, async () => {
  const b = await launch();
  try {
    await b.page.goto(`${b.baseUrl}/`);
    for (const seed of [1, 2, 3]) {
      const r = await b.page.evaluate(rounds, seed);
      assert.ok(r.heldAtSetup > 0, `seed ${seed}: candidates overtook their description and were held`);
      assert.equal(r.ufragsChanged, true, `seed ${seed}: both sides restarted ICE`);
      assert.equal(r.staleDropped, r.staleReplayed, `seed ${seed}: every replayed description was dropped as stale`);
      assert.equal(r.aRebuilt, true, `seed ${seed}: the other side followed the rebuilt connection`);
      if (seed === 1) {
        assert.equal(r.lostOffers, 1, 'an offer was dropped');
        assert.ok(r.offersResent >= 1, 'the lost offer was sent again');
        assert.equal(r.firstAnswersLost, 1, 'a first answer was dropped');
        assert.deepEqual(r.errors, [], 'no negotiation errors');
      }
    }
  } finally {
    await b.close();
  }
});
