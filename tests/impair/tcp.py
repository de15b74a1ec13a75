"""The impairment relay over TCP (`relay.py --tcp`): byte streams, e.g.
TURN over TCP.

Each accepted connection gets one upstream connection and, per direction,
a `StreamDirection`: the stream is cut into segments of `mss` bytes by
offset, and each segment draws its fate from the direction's seeded PRNG
in stream order, like a packet in the UDP relay (four numbers each). What
a byte stream can show of an impairment:

- delay and jitter: added to each piece of the stream; a piece never
  leaves before the one in front of it (no reordering on a stream);
- loss (random or Gilbert-Elliott bursts): a lost segment is sent again,
  `rto` ms later, and everything behind it waits (head-of-line blocking);
  no byte is ever dropped;
- cap: pieces are serialised at the rate; when the queue in front of the
  link holds more than `queue` ms of sending, the relay stops reading that
  direction until it drains, so the sender's TCP window fills (a byte
  stream has no tail drop).

Bounded: at most `max_connections` at once, and per direction at most
QUEUE_PIECES pieces in flight inside the relay (reading waits beyond).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from relay import Direction, Impairment, Stats

READ_BYTES = 16384
QUEUE_PIECES = 256


@dataclass
class StreamStats(Stats):
    """A direction's counters over TCP: `packets` are segments; `sent` pieces."""

    bytes: int = 0
    retransmitted: int = 0
    held: int = 0  # times reading stopped for a full cap queue


@dataclass
class StreamDirection:
    """The fate of each byte of one direction of a stream."""

    imp: Impairment
    seed: int
    d: Direction = field(init=False)
    offset: int = field(init=False, default=0)
    fate: tuple[bool, float] = field(init=False, default=(False, 0.0))

    def __post_init__(self) -> None:
        self.d = Direction(self.imp, self.seed)
        self.d.stats = StreamStats()

    @property
    def stats(self):
        return self.d.stats

    def _draw(self) -> tuple[bool, float]:
        """A new segment: (lost, jitter in ms)."""
        u_loss, u_jitter, _, _ = (self.d.rng.random() for _ in range(4))
        self.d.stats.packets += 1
        lost = self.d._lost(u_loss)
        if lost:
            self.d.stats.retransmitted += 1
        return lost, self.imp.jitter_ms * (2 * u_jitter - 1)

    def queue_wait(self, now: float) -> float:
        """How long the cap's queue would keep a byte arriving now (s)."""
        return max(self.d.link_free - now, 0.0) if self.imp.rate_kbps > 0 else 0.0

    def schedule(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        """Cuts `data` at segment boundaries; returns (departure, piece) in order."""
        imp, d, mss = self.imp, self.d, self.imp.mss
        out = []
        at = 0
        while at < len(data):
            if self.offset % mss == 0:
                self.fate = self._draw()
            n = min(mss - self.offset % mss, len(data) - at)
            piece = data[at : at + n]
            at += n
            self.offset += n
            start = now
            if imp.rate_kbps > 0:
                wait = max(d.link_free - now, 0.0)
                d.stats.max_queue_ms = max(d.stats.max_queue_ms, wait * 1000)
                d.link_free = now + wait + n * 8 / (imp.rate_kbps * 1000)
                start = d.link_free
            lost, jitter = self.fate
            extra = max(imp.delay_ms + jitter, 0.0) + (imp.rto_ms if lost else 0.0)
            t = max(start + extra / 1000, d.last_departure)
            d.last_departure = t
            d.stats.bytes += n
            d.stats.sent += 1
            out.append((t, piece))
        return out


def stream_directions(up: Impairment, down: Impairment, seed: int, index: int) -> dict[str, StreamDirection]:
    """Connection `index` (in accept order): its own streams of numbers from
    the seed (the first connection's are those of the UDP relay)."""
    base = seed * 2 + 1 + 1000 * index
    return {"up": StreamDirection(up, base), "down": StreamDirection(down, base + 1)}


class TcpRelay:
    """The TCP relay: `await start()`, then `close()` and `await wait_closed()`."""

    def __init__(self, listen, upstream, up: Impairment, down: Impairment, seed: int, max_connections: int = 64):
        self.listen = listen
        self.upstream = upstream
        self.imps = {"up": up.for_stream(), "down": down.for_stream()}
        self.seed = seed
        self.max_connections = max_connections
        self.server: asyncio.base_events.Server | None = None
        self.accepted = 0
        self.refused = 0
        self.tasks: set[asyncio.Task] = set()
        self.conns: list[dict[str, StreamDirection]] = []

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[:2]

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = await asyncio.start_server(self._accept, *self.listen)

    def directions(self, index: int) -> dict[str, StreamDirection]:
        return stream_directions(self.imps["up"], self.imps["down"], self.seed, index)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        live = sum(not t.done() for t in self.tasks) // 2
        if live >= self.max_connections:
            self.refused += 1
            writer.close()
            return
        dirs = self.directions(self.accepted)
        self.accepted += 1
        self.conns.append(dirs)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, dirs["up"])),
            asyncio.ensure_future(self._pump(up_reader, writer, dirs["down"])),
        ]
        self.tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self.tasks.difference_update(pumps)
            for w in (writer, up_writer):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sd: StreamDirection) -> None:
        """Reads one direction, schedules it, and writes each piece at its time."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_PIECES)

        async def send() -> None:
            broken = False  # the far side gone: keep taking pieces, write none
            while (item := await queue.get()) is not None:
                if broken:
                    continue
                t, piece = item
                delay = t - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    writer.write(piece)
                    await writer.drain()
                except (ConnectionError, OSError):
                    broken = True
            if not broken and writer.can_write_eof():
                writer.write_eof()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                # A full cap queue: stop reading until it drains to its bound.
                over = sd.queue_wait(self.loop.time()) - sd.imp.queue_ms / 1000
                if over > 0:
                    sd.stats.held += 1
                    await asyncio.sleep(over)
                data = await reader.read(READ_BYTES)
                if not data:
                    break
                for item in sd.schedule(data, self.loop.time()):
                    await queue.put(item)
            await queue.put(None)
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()

    def stats(self) -> dict:
        """Counters per direction over every connection, plus connections."""
        out: dict = {}
        for name in ("up", "down"):
            total: dict = {}
            for dirs in self.conns:
                for k, v in vars(dirs[name].stats).items():
                    total[k] = max(total.get(k, 0), v) if k == "max_queue_ms" else total.get(k, 0) + v
            out[name] = total
        out["connections"] = self.accepted
        out["refused"] = self.refused
        return out

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in self.tasks:
            t.cancel()

    async def wait_closed(self) -> None:
        if self.server is not None:
            await self.server.wait_closed()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
