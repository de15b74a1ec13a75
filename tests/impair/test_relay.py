#!/usr/bin/env python3
"""Tests of the impairment relay (tests/impair/relay.py).

The statistics (loss, bursts, delay, jitter, reordering, cap, duplication,
same seed) are checked on the model over long seeded packet sequences, in
simulated time; then the relay itself forwards real datagrams on loopback
to an echo server, and drops exactly what the model says for its seed.
Over TCP (tcp.py) the same for byte streams: every byte arrives, in order;
lost segments are the seeded ones and cost their retransmission delay;
delay each way; the cap's rate and its bounded queue.

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
from tcp import StreamDirection, TcpRelay, stream_directions  # noqa: E402


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


def stream_fates(spec: str, sizes: list[int], seed: int = 7):
    """Schedules reads of these sizes at time 0; returns (direction, [(departure, piece)])."""
    sd = StreamDirection(Impairment.parse(spec).for_stream(), seed)
    out = []
    for i, n in enumerate(sizes):
        out += sd.schedule(bytes([i % 256]) * n, 0.0)
    return sd, out


class StreamModel(unittest.TestCase):
    def test_loss_is_retransmission_delay_never_a_missing_byte(self):
        sd, out = stream_fates("loss=0.2,rto=200,mss=1000", [1000] * 5000)
        self.assertEqual(sum(len(p) for _, p in out), 5_000_000)
        self.assertAlmostEqual(sd.stats.retransmitted / sd.stats.packets, 0.2, delta=0.015)
        first = next(i for i, (t, _) in enumerate(out) if t > 0)
        self.assertTrue(all(t >= 0.2 for t, _ in out[first:]), "head-of-line: once one segment waits, all behind it wait")
        departures = [t for t, _ in out]
        self.assertEqual(departures, sorted(departures))

    def test_bursty_loss_on_a_stream(self):
        sd, _ = stream_fates("loss=0.1,burst=3,mss=100", [100] * 40000)
        self.assertAlmostEqual(sd.stats.retransmitted / sd.stats.packets, 0.1, delta=0.015)

    def test_same_bytes_same_fates_however_the_reads_split_them(self):
        spec = "loss=0.2,burst=2,delay=20,jitter=10,mss=500"
        a, pa = stream_fates(spec, [500] * 400, seed=3)
        b, pb = stream_fates(spec, [137, 1500, 3, 998] * 50 + [100 * 400 - 2638 * 50 + 100 * 1600], seed=3)
        self.assertEqual(a.stats.packets, b.stats.packets)
        self.assertEqual(a.stats.retransmitted, b.stats.retransmitted)
        # The departure of every byte is the same: compare per byte offset.
        per_byte = lambda out: [t for t, p in out for _ in range(len(p))]  # noqa: E731
        self.assertEqual(per_byte(pa), per_byte(pb))
        c, _ = stream_fates(spec, [500] * 400, seed=4)
        self.assertNotEqual(a.stats.retransmitted, c.stats.retransmitted)

    def test_jitter_keeps_the_order(self):
        _, out = stream_fates("delay=80,jitter=30,mss=100", [100] * 2000)
        departures = [t for t, _ in out]
        self.assertEqual(departures, sorted(departures))
        self.assertGreaterEqual(min(departures), 0.050 - 1e-9)

    def test_cap_serialises_at_the_rate(self):
        sd, out = stream_fates("rate=24,mss=100", [100] * 300)
        self.assertAlmostEqual(max(t for t, _ in out), 300 * 100 * 8 / 24000, places=6)
        self.assertEqual(sd.stats.bytes, 30000)

    def test_dup_and_reorder_are_refused_on_a_stream(self):
        for spec in ("dup=0.1", "jitter=10,reorder=1"):
            with self.assertRaises(ValueError, msg=spec):
                Impairment.parse(spec).for_stream()
        with self.assertRaises(ValueError):
            Impairment.parse("mss=0")


async def through_tcp_relay(up: str, down: str, seed: int, payload: bytes, chunk: int = 4096):
    """Sends payload through a TCP relay to an echo server and reads it all
    back; returns (bytes back, seconds from first write to last byte, relay stats)."""
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    relay = TcpRelay(("127.0.0.1", 0), server.sockets[0].getsockname()[:2], Impairment.parse(up), Impairment.parse(down), seed)
    await relay.start()
    try:
        reader, writer = await asyncio.open_connection(*relay.address)
        started = time.monotonic()

        async def write():
            for i in range(0, len(payload), chunk):
                writer.write(payload[i : i + chunk])
                await writer.drain()
            writer.write_eof()

        writing = asyncio.ensure_future(write())
        got = await asyncio.wait_for(reader.read(-1), 30)  # until the echo's EOF comes back
        took = time.monotonic() - started
        await writing
        writer.close()
        return got, took, relay.stats()
    finally:
        relay.close()
        await relay.wait_closed()
        server.close()


class OverTcp(unittest.TestCase):
    payload = bytes(range(256)) * 800  # 204,800 bytes

    def test_every_byte_in_order_and_the_seeded_segments_retransmitted(self):
        spec = "loss=0.2,rto=30,mss=1200"
        got1, _, stats1 = asyncio.run(through_tcp_relay(spec, spec, 9, self.payload))
        got2, _, stats2 = asyncio.run(through_tcp_relay(spec, spec, 9, self.payload, chunk=777))
        self.assertEqual(got1, self.payload)
        self.assertEqual(got2, self.payload)
        segments = -(-len(self.payload) // 1200)
        expected = {}
        for name, sd in stream_directions(Impairment.parse(spec), Impairment.parse(spec), 9, 0).items():
            sd.schedule(self.payload, 0.0)
            expected[name] = sd.stats.retransmitted
        for stats in (stats1, stats2):
            for name in ("up", "down"):
                self.assertEqual(stats[name]["packets"], segments)
                self.assertEqual(stats[name]["retransmitted"], expected[name])
                self.assertEqual(stats[name]["bytes"], len(self.payload))
        self.assertAlmostEqual(expected["up"] / segments, 0.2, delta=0.08)

    def test_delay_each_way(self):
        got, took, _ = asyncio.run(through_tcp_relay("delay=40", "delay=30", 1, b"ping"))
        self.assertEqual(got, b"ping")
        self.assertGreaterEqual(took, 0.070 - 0.002)

    def test_cap_rate_and_bounded_queue(self):
        # 100 KB up a 2000 kbit/s link (0.4 s) behind a 50 ms queue.
        payload = self.payload[:100_000]
        got, took, stats = asyncio.run(through_tcp_relay("rate=2000,queue=50", "", 1, payload))
        self.assertEqual(got, payload)
        self.assertGreaterEqual(took, 100_000 * 8 / 2_000_000 - 0.01)
        self.assertGreater(stats["up"]["held"], 0, "a full queue stops reading")
        # The queue never holds much more than its bound: one read's worth.
        self.assertLessEqual(stats["up"]["max_queue_ms"], 50 + 16384 * 8 / 2000 + 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
