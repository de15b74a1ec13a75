#!/usr/bin/env python3
"""A bad network in a box: a seeded UDP (or TCP) impairment relay for the lab.

The kernel here has no netem, so impairment lives in user space. The relay
listens on one address (e.g. 127.0.0.2:3478) and forwards every datagram
to an upstream (e.g. the TURN server), one upstream socket per client
address, and the replies back. Each direction ("up": client to upstream,
"down": upstream to client) has its own impairment:

  loss=P        drop a share P of packets (0..1)
  burst=L       with loss: Gilbert-Elliott bursts of mean length L packets
                (the long-run loss stays P; L=1 is independent loss)
  delay=MS      one-way delay added to every packet
  jitter=MS     plus a uniform random -MS..+MS (never below zero)
  reorder=0|1   with jitter: 1 lets a packet overtake an earlier one;
                0 (default) keeps the order (a packet waits for the one
                before it)
  rate=KBPS     bandwidth cap in kbit/s (packets queue behind each other)
  queue=MS      with rate: the queue holds at most MS of sending time
                (default 200); a packet that would wait longer is dropped
  dup=P         send a share P of packets twice
  rto=MS        TCP only: what a lost segment costs (default 200), see below
  mss=BYTES     TCP only: the segment the loss draws act on (default 1200)

With --tcp the relay carries byte streams (TURN over TCP): it accepts a
connection, opens one upstream, and impairs each direction of the stream
(tests/impair/tcp.py). A byte stream cannot lose or reorder bytes, so
there: loss (random or bursty) is a retransmission, the lost segment held
back `rto` ms and everything behind it waiting too (head-of-line blocking,
as TCP delivers); jitter never reorders; the cap's full queue stops reading
(the sender's window fills) instead of dropping; dup and reorder=1 are
refused.

Deterministic for a seed: each direction draws the same number of numbers
from its own seeded PRNG for every packet, in packet order, so packet N
meets the same fate (dropped, duplicated, its jitter) in every run with
the same seed, whatever the timing. Only the cap's queue drops depend on
arrival times. Over TCP the draws are per segment of the stream (`mss`
bytes by offset), so the same bytes meet the same fate however the reads
split them.

  python3 tests/impair/relay.py --listen 127.0.0.2:3478 \\
      --upstream 127.0.0.1:3478 --seed 7 --down loss=0.2 --up delay=20

With `--control` (UDP), each stdin line `DIRECTION SPEC` (`up loss=0.15`,
`up` for none) changes that direction's impairment while it runs
(answered `ok DIRECTION` or `error ...`). It prints `ready HOST:PORT` once
listening, and on SIGTERM/SIGINT, or by itself after --max-seconds
(default 3600), a JSON line of counters per direction (`stats {...}`)
before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import socket
import sys
from dataclasses import dataclass, field

DIRECTIONS = ("up", "down")


@dataclass
class Impairment:
    """What one direction does to its packets (see the module docstring)."""

    loss: float = 0.0
    burst: float = 1.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: bool = False
    rate_kbps: float = 0.0
    queue_ms: float = 200.0
    dup: float = 0.0
    rto_ms: float = 200.0
    mss: int = 1200

    @classmethod
    def parse(cls, spec: str) -> "Impairment":
        """`loss=0.2,burst=3,delay=80,jitter=30,reorder=1,rate=24,queue=200,dup=0.01`."""
        imp = cls()
        names = {
            "loss": ("loss", float),
            "burst": ("burst", float),
            "delay": ("delay_ms", float),
            "jitter": ("jitter_ms", float),
            "reorder": ("reorder", lambda v: v not in ("0", "false", "no", "")),
            "rate": ("rate_kbps", float),
            "queue": ("queue_ms", float),
            "dup": ("dup", float),
            "rto": ("rto_ms", float),
            "mss": ("mss", int),
        }
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key not in names:
                raise ValueError(f"unknown impairment {key!r} (known: {', '.join(names)})")
            attr, conv = names[key]
            setattr(imp, attr, conv(value))
        if not 0 <= imp.loss < 1 or not 0 <= imp.dup <= 1:
            raise ValueError("loss must be in [0, 1) and dup in [0, 1]")
        if imp.burst < 1:
            raise ValueError("burst is a mean length in packets, at least 1")
        if min(imp.delay_ms, imp.jitter_ms, imp.rate_kbps, imp.queue_ms, imp.rto_ms) < 0:
            raise ValueError("delay, jitter, rate, queue and rto cannot be negative")
        if imp.mss < 1:
            raise ValueError("mss is at least 1 byte")
        return imp

    def for_stream(self) -> "Impairment":
        """Checks that the settings make sense on a byte stream (TCP)."""
        if self.dup > 0 or self.reorder:
            raise ValueError("a byte stream cannot duplicate or reorder: dup and reorder=1 are UDP only")
        return self


@dataclass
class Stats:
    packets: int = 0
    dropped: int = 0
    queue_dropped: int = 0
    duplicated: int = 0
    sent: int = 0
    max_queue_ms: float = 0.0


@dataclass
class Direction:
    """The fate of each packet of one direction, decided in packet order.

    `schedule(size, now)` returns the departure times of the packet (none:
    dropped; two: duplicated). Four numbers are drawn per packet whatever the
    settings, so the same seed gives the same fates.
    """

    imp: Impairment
    seed: int
    rng: random.Random = field(init=False)
    bad: bool = field(init=False, default=False)
    link_free: float = field(init=False, default=0.0)
    last_departure: float = field(init=False, default=0.0)
    stats: Stats = field(init=False, default_factory=Stats)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _lost(self, u: float) -> bool:
        p, burst = self.imp.loss, self.imp.burst
        if p <= 0:
            return False
        if burst <= 1:
            return u < p
        # Gilbert-Elliott with a lossless good state and an all-lost bad
        # state: leave bad with 1/L (mean burst L), enter it with
        # p / (L (1 - p)), so the long-run share of bad packets is p.
        if self.bad:
            self.bad = u >= 1 / burst
        else:
            self.bad = u < p / (burst * (1 - p))
        return self.bad

    def schedule(self, size: int, now: float) -> list[float]:
        u_loss, u_jitter, u_dup, u_jitter2 = (self.rng.random() for _ in range(4))
        self.stats.packets += 1
        if self._lost(u_loss):
            self.stats.dropped += 1
            return []
        imp = self.imp
        start = now
        if imp.rate_kbps > 0:
            # Serialised behind the packets before it; tail-dropped when the
            # wait would exceed the queue.
            wait = max(self.link_free - now, 0.0)
            if wait * 1000 > imp.queue_ms:
                self.stats.queue_dropped += 1
                return []
            self.stats.max_queue_ms = max(self.stats.max_queue_ms, wait * 1000)
            self.link_free = now + wait + size * 8 / (imp.rate_kbps * 1000)
            start = self.link_free

        def depart(u: float) -> float:
            extra = imp.delay_ms + imp.jitter_ms * (2 * u - 1)
            t = start + max(extra, 0.0) / 1000
            if not imp.reorder:
                t = max(t, self.last_departure)
                self.last_departure = t
            return t

        times = [depart(u_jitter)]
        if u_dup < imp.dup:
            self.stats.duplicated += 1
            times.append(depart(u_jitter2))
        self.stats.sent += len(times)
        return times


class Relay:
    """The UDP relay: `await start()`, then `close()`."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], up: Impairment, down: Impairment, seed: int):
        self.listen = listen
        self.upstream = upstream
        # Each direction its own stream of numbers from the one seed.
        self.dirs = {"up": Direction(up, seed * 2 + 1), "down": Direction(down, seed * 2 + 2)}
        self.front: asyncio.DatagramTransport | None = None
        self.backs: dict[tuple, socket.socket] = {}
        self.pending: set[asyncio.TimerHandle] = set()
        self.loop = asyncio.get_event_loop()

    @property
    def address(self) -> tuple[str, int]:
        assert self.front is not None
        return self.front.get_extra_info("sockname")[:2]

    def _later(self, when: float, send) -> None:
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            self.pending.discard(handle)
            send()

        handle = self.loop.call_at(when, fire)
        self.pending.add(handle)

    def _forward(self, direction: str, data: bytes, send) -> None:
        now = self.loop.time()
        for t in self.dirs[direction].schedule(len(data), now):
            if t <= now:
                send(data)
            else:
                self._later(t, lambda: send(data))

    async def start(self) -> None:
        relay = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                relay._up(data, addr)

        self.front, _ = await self.loop.create_datagram_endpoint(Front, local_addr=self.listen)

    def _back(self, addr) -> socket.socket:
        """The upstream socket of one client address, made on its first packet."""
        back = self.backs.get(addr)
        if back is None:
            back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            back.setblocking(False)
            back.connect(self.upstream)

            def readable() -> None:
                while True:
                    try:
                        reply = back.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        return
                    except OSError:  # e.g. ICMP port unreachable: nothing upstream
                        return
                    self._forward("down", reply, lambda d: self._send_front(d, addr))

            self.loop.add_reader(back.fileno(), readable)
            self.backs[addr] = back
        return back

    def _up(self, data: bytes, addr) -> None:
        back = self._back(addr)

        def send(d: bytes) -> None:
            try:
                back.send(d)
            except OSError:  # a full buffer or a closed socket: lost, as UDP may be
                pass

        self._forward("up", data, send)

    def _send_front(self, data: bytes, addr) -> None:
        if self.front is not None and not self.front.is_closing():
            self.front.sendto(data, addr)

    def stats(self) -> dict:
        return {name: vars(d.stats) for name, d in self.dirs.items()}

    def close(self) -> None:
        for handle in self.pending:
            handle.cancel()
        self.pending.clear()
        for back in self.backs.values():
            self.loop.remove_reader(back.fileno())
            back.close()
        if self.front is not None:
            self.front.close()


def apply_control(relay: Relay, line: str) -> str:
    """One `--control` line, `DIRECTION SPEC` (e.g. `up loss=0.15` or
    `up ` for none): that direction's impairment from now on (its seeded
    numbers go on where they were). Returns the reply line."""
    direction, _, spec = line.strip().partition(" ")
    if direction not in relay.dirs:
        return f"error unknown direction {direction!r} (known: {', '.join(DIRECTIONS)})"
    try:
        relay.dirs[direction].imp = Impairment.parse(spec)
    except ValueError as error:
        return f"error {error}"
    return f"ok {direction}"


async def read_control(relay: Relay) -> None:
    """With `--control`: apply each line of stdin (apply_control), answer on stdout."""
    reader = asyncio.StreamReader()
    await relay.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        print(apply_control(relay, line.decode()), flush=True)


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, type=host_port, help="HOST:PORT (port 0: any)")
    parser.add_argument("--upstream", required=True, type=host_port, help="HOST:PORT")
    parser.add_argument("--tcp", action="store_true", help="relay TCP connections instead of UDP datagrams")
    parser.add_argument("--max-connections", type=int, default=64, help="TCP: refuse connections beyond this many")
    parser.add_argument("--max-seconds", type=float, default=3600, help="stop by itself after this long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--up", default="", type=Impairment.parse, help="impairment client -> upstream")
    parser.add_argument("--down", default="", type=Impairment.parse, help="impairment upstream -> client")
    parser.add_argument("--control", action="store_true", help="read `DIRECTION SPEC` lines on stdin to change an impairment")
    args = parser.parse_args(argv)
    if args.tcp and args.control:
        parser.error("--control changes UDP impairments only")
    if args.tcp:
        from tcp import TcpRelay

        try:
            up, down = args.up.for_stream(), args.down.for_stream()
        except ValueError as err:
            parser.error(str(err))
        relay = TcpRelay(args.listen, args.upstream, up, down, args.seed, args.max_connections)
    else:
        relay = Relay(args.listen, args.upstream, args.up, args.down, args.seed)
    await relay.start()
    host, port = relay.address
    print(f"ready {host}:{port}", flush=True)
    control = asyncio.ensure_future(read_control(relay)) if args.control else None
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        relay.loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        pass
    print("stats " + json.dumps(relay.stats()), flush=True)
    if control is not None:
        control.cancel()
    relay.close()
    if args.tcp:
        await relay.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
