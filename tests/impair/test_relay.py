#!/usr/bin/env python3
"""Tests of the impairment relay (tests/impair/relay.py).

The statistics (loss, bursts, delay, jitter, reordering, cap, duplication,
same seed) are checked on the model over long seeded packet sequences, in
simulated time; then the relay itself forwards real datagrams on loopback
to an echo server, and drops exactly what the model says for its seed.

  python3 tests/impair/test_relay.py
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay import Direction, Impairment, Relay  # noqa: E402


def run_model(spec: str, n: int, seed: int = 7, gap_s: float = 0.02, size: int = 100):
    """Feeds n packets, one every gap_s; returns (direction, [(index, arrival, [departures])])."""
    d = Direction(Impairment.parse(spec), seed)
    out = [(i, i * gap_s, d.schedule(size, i * gap_s)) for i in range(n)]
    return d, out


def burst_lengths(lost: list[bool]) -> list[int]:
    runs, run = [], 0
    for x in lost:
        if x:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    if run:
        runs.append(run)
    return runs


class Model(unittest.TestCase):
    def test_random_loss_matches_its_setting(self):
        d, out = run_model("loss=0.2", 20000)
        share = sum(not t for _, _, t in out) / len(out)
        self.assertAlmostEqual(share, 0.2, delta=0.015)
        self.assertEqual(d.stats.dropped, sum(not t for _, _, t in out))
        # Independent losses: bursts average 1 / (1 - p) = 1.25.
        runs = burst_lengths([not t for _, _, t in out])
        self.assertAlmostEqual(sum(runs) / len(runs), 1.25, delta=0.08)

    def test_bursty_loss_keeps_the_rate_and_the_mean_burst(self):
        _, out = run_model("loss=0.1,burst=3", 60000)
        lost = [not t for _, _, t in out]
        self.assertAlmostEqual(sum(lost) / len(lost), 0.1, delta=0.015)
        runs = burst_lengths(lost)
        self.assertAlmostEqual(sum(runs) / len(runs), 3.0, delta=0.3)

    def test_no_loss_setting_drops_nothing(self):
        _, out = run_model("delay=10", 2000)
        self.assertTrue(all(len(t) == 1 for _, _, t in out))

    def test_delay_is_added_to_every_packet(self):
        _, out = run_model("delay=80", 500)
        for _, arrival, times in out:
            self.assertAlmostEqual(times[0] - arrival, 0.080, places=9)

    def test_jitter_with_reordering_spreads_and_reorders(self):
        _, out = run_model("delay=80,jitter=30,reorder=1", 5000)
        delays = [t[0] - a for _, a, t in out]
        self.assertGreaterEqual(min(delays), 0.050 - 1e-9)
        self.assertLessEqual(max(delays), 0.110 + 1e-9)
        self.assertAlmostEqual(sum(delays) / len(delays), 0.080, delta=0.002)
        # Uniform over +-30 ms: standard deviation 30 / sqrt(3).
        mean = sum(delays) / len(delays)
        sd = (sum((x - mean) ** 2 for x in delays) / len(delays)) ** 0.5
        self.assertAlmostEqual(sd, 0.030 / 3**0.5, delta=0.0015)
        departures = [t[0] for _, _, t in out]
        overtaken = sum(b < a for a, b in zip(departures, departures[1:]))
        self.assertGreater(overtaken, len(out) // 20, "packets 20 ms apart with +-30 ms jitter overtake each other")

    def test_jitter_without_reordering_keeps_the_order(self):
        _, out = run_model("delay=80,jitter=30,reorder=0", 5000)
        departures = [t[0] for _, _, t in out]
        self.assertEqual(departures, sorted(departures))
        delays = [t[0] - a for _, a, t in out]
        self.assertGreaterEqual(min(delays), 0.050 - 1e-9)
        self.assertGreater(max(delays) - min(delays), 0.050, "the jitter is still there")

    def test_cap_limits_throughput_and_bounds_the_queue(self):
        # 100-byte packets every 10 ms: 80 kbit/s offered to a 24 kbit/s link.
        d, out = run_model("rate=24,queue=200", 3000, gap_s=0.010)
        sent = [t[0] for _, _, t in out if t]
        duration = max(sent) - out[0][1]
        kbps = len(sent) * 100 * 8 / duration / 1000
        self.assertAlmostEqual(kbps, 24, delta=24 * 0.03)
        self.assertLessEqual(d.stats.max_queue_ms, 200 + 1e-6)
        self.assertGreater(d.stats.queue_dropped, 0)
        # Waiting time never exceeds the queue plus one packet's sending time.
        for _, arrival, times in out:
            if times:
                self.assertLessEqual(times[0] - arrival, 0.200 + 100 * 8 / 24000 + 1e-9)

    def test_cap_above_the_offered_rate_drops_nothing(self):
        d, out = run_model("rate=100,queue=50", 2000, gap_s=0.010)  # 80 kbit/s offered
        self.assertEqual(d.stats.queue_dropped, 0)
        self.assertTrue(all(len(t) == 1 for _, _, t in out))

    def test_duplication(self):
        d, out = run_model("dup=0.05", 20000)
        share = sum(len(t) == 2 for _, _, t in out) / len(out)
        self.assertAlmostEqual(share, 0.05, delta=0.008)
        self.assertEqual(d.stats.duplicated, sum(len(t) == 2 for _, _, t in out))

    def test_same_seed_same_fates_other_seed_other_fates(self):
        spec = "loss=0.1,burst=3,delay=40,jitter=20,reorder=1,dup=0.02"
        _, a = run_model(spec, 5000, seed=11)
        _, b = run_model(spec, 5000, seed=11)
        _, c = run_model(spec, 5000, seed=12)
        self.assertEqual(a, b)
        self.assertNotEqual([bool(t) for _, _, t in a], [bool(t) for _, _, t in c])

    def test_fates_do_not_depend_on_timing(self):
        # Same seed, packets at other times: the same ones are dropped.
        _, a = run_model("loss=0.2,burst=2,jitter=10", 3000, seed=3, gap_s=0.02)
        _, b = run_model("loss=0.2,burst=2,jitter=10", 3000, seed=3, gap_s=0.001)
        self.assertEqual([bool(t) for _, _, t in a], [bool(t) for _, _, t in b])

    def test_bad_settings_are_refused(self):
        for spec in ("loss=1", "loss=-0.1", "burst=0.5", "delay=-1", "wobble=3"):
            with self.assertRaises(ValueError, msg=spec):
                Impairment.parse(spec)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class Collect(asyncio.DatagramProtocol):
    def __init__(self):
        self.got: dict[int, list[float]] = {}
        self.changed = asyncio.Event()

    def datagram_received(self, data, addr):
        (i,) = struct.unpack_from("!I", data)
        self.got.setdefault(i, []).append(time.monotonic())
        self.changed.set()


async def through_relay(up: str, down: str, seed: int, n: int, size: int = 64, gap_s: float = 0.001, quiet_s: float = 0.5):
    """Sends n numbered datagrams through a relay to an echo server; returns
    ({index: [echo arrival times]}, {index: send time}, relay stats)."""
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    relay = Relay(("127.0.0.1", 0), echo.get_extra_info("sockname")[:2], Impairment.parse(up), Impairment.parse(down), seed)
    await relay.start()
    client, collect = await loop.create_datagram_endpoint(Collect, remote_addr=relay.address)
    sent = {}
    try:
        for i in range(n):
            sent[i] = time.monotonic()
            client.sendto(struct.pack("!I", i).ljust(size, b"\0"))
            await asyncio.sleep(gap_s)
        # Done once nothing more arrives for quiet_s.
        while True:
            collect.changed.clear()
            try:
                await asyncio.wait_for(collect.changed.wait(), quiet_s)
            except asyncio.TimeoutError:
                break
        return collect.got, sent, relay.stats()
    finally:
        client.close()
        relay.close()
        echo.close()


class OnLoopback(unittest.TestCase):
    def test_drops_what_the_model_says_and_the_same_in_every_run(self):
        spec = "loss=0.3,burst=2"
        got1, _, stats = asyncio.run(through_relay(spec, "", seed=5, n=400))
        got2, _, _ = asyncio.run(through_relay(spec, "", seed=5, n=400))
        model = Direction(Impairment.parse(spec), 5 * 2 + 1)  # the relay's "up" stream
        expected = {i for i in range(400) if model.schedule(64, 0.0)}
        self.assertEqual(set(got1), expected)
        self.assertEqual(set(got2), expected)
        self.assertEqual(stats["up"]["dropped"], 400 - len(expected))
        self.assertAlmostEqual(len(expected) / 400, 0.7, delta=0.08)

    def test_delay_each_way(self):
        got, sent, _ = asyncio.run(through_relay("delay=30", "delay=20", seed=1, n=50, gap_s=0.005))
        self.assertEqual(len(got), 50)
        rtts = [got[i][0] - sent[i] for i in got]
        self.assertGreaterEqual(min(rtts), 0.050 - 0.002)
        # Median within a generous margin above (a loaded machine).
        self.assertLess(sorted(rtts)[len(rtts) // 2], 0.050 + 0.150)

    def test_duplicates_arrive_twice(self):
        got, _, stats = asyncio.run(through_relay("", "dup=0.5", seed=2, n=100))
        twice = sum(len(v) == 2 for v in got.values())
        self.assertEqual(twice, stats["down"]["duplicated"])
        self.assertGreater(twice, 30)

    def test_cap_on_the_wire(self):
        # 100 packets of 1000 bytes at once into a 1000 kbit/s link: 0.8 s.
        got, sent, stats = asyncio.run(
            through_relay("rate=1000,queue=5000", "", seed=1, n=100, size=1000, gap_s=0)
        )
        self.assertEqual(len(got), 100)
        first, last = min(sent.values()), max(t[0] for t in got.values())
        kbps = 100 * 1000 * 8 / (last - first) / 1000
        self.assertLess(kbps, 1000 * 1.05)
        self.assertGreater(kbps, 1000 * 0.6)
        self.assertEqual(stats["up"]["queue_dropped"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
