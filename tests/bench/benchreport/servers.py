"""The four signaling servers of the side-by-side run, each its own process.

`start(kind, ...)` starts one on a loopback port and returns a `Server`
(its pid is the process whose CPU and RSS are read); `Server.stop()` ends it
and waits, killing it if it has not gone in a few seconds.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KINDS = ["tincan", "socketio", "peerjs", "ws"]
LABELS = {
    "tincan": "Tincan",
    "socketio": "socket.io",
    "peerjs": "PeerJS server",
    "ws": "bare ws relay",
}
SECRET = "relay-bench-secret-relay-bench-secret-0123"


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen
    url: str
    workdir: tempfile.TemporaryDirectory

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.workdir.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, secs: float = 20) -> None:
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {secs} s")


def first_line(proc: subprocess.Popen, pattern: str, secs: float = 30) -> re.Match:
    """Reads the server's stdout until a line matches (the ready line)."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited before printing {pattern!r}")
        m = re.search(pattern, line)
        if m:
            return m
    raise RuntimeError(f"no {pattern!r} from the server in {secs} s")


def start(kind: str, root: Path, bins: Path) -> Server:
    relays = root / "tests/bench/relays"
    work = tempfile.TemporaryDirectory(prefix=f"relay-{kind}-")
    log = open(Path(work.name) / "server.log", "w")
    env = dict(os.environ)
    if kind == "tincan":
        env.update(
            TINCAN_JWT_SECRET=SECRET,
            TINCAN_TURN="off",
            TINCAN_DATA_DIR=str(Path(work.name) / "data"),
            # One machine plays every client: lift the per-address and
            # per-socket limits a public server keeps.
            TINCAN_MAX_CONNS="100000",
            TINCAN_MAX_CONNS_PER_IP="0",
            TINCAN_MSG_RATE="10000",
            TINCAN_MSG_BURST="10000",
            RUST_LOG="warn",
        )
        proc = subprocess.Popen(
            [str(bins / "tincan-bench-server")], env=env, stdout=subprocess.PIPE,
            stderr=log, text=True,
        )
        url = first_line(proc, r"listening (ws://\S+)").group(1)
    elif kind in ("socketio", "ws"):
        script = "socketio-relay.mjs" if kind == "socketio" else "ws-relay.mjs"
        proc = subprocess.Popen(
            ["node", str(relays / script)], env=env, stdout=subprocess.PIPE,
            stderr=log, text=True, cwd=relays,
        )
        port = first_line(proc, r"listening (\d+)").group(1)
        url = f"ws://127.0.0.1:{port}"
    elif kind == "peerjs":
        port = free_port()
        # The `peer` package's own server, as its README runs it; only the
        # concurrent-connection cap (5000 by default) is raised.
        proc = subprocess.Popen(
            ["node", str(relays / "node_modules/peer/dist/bin/peerjs.js"),
             "--port", str(port), "--host", "127.0.0.1",
             "--concurrent_limit", "100000", "--alive_timeout", "600000"],
            env=env, stdout=log, stderr=log, text=True, cwd=relays,
        )
        wait_port(port, proc)
        url = f"ws://127.0.0.1:{port}"
    else:
        raise ValueError(kind)
    return Server(kind, proc, url, work)
