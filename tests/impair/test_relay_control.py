#!/usr/bin/env python3
"""Tests of the relay's `--control` lines (tests/impair/relay.py): an
impairment changed while it runs, e.g. loss that stops mid-call.

  python3 tests/impair/test_relay_control.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from relay import Impairment, Relay, apply_control  # noqa: E402


class ApplyControl(unittest.TestCase):
    def relay(self) -> Relay:
        return Relay(("127.0.0.1", 0), ("127.0.0.1", 9), Impairment.parse("loss=0.2"), Impairment(), seed=3)

    def test_a_line_replaces_one_direction(self):
        relay = self.relay()
        self.assertEqual(apply_control(relay, "up loss=0.05,delay=10\n"), "ok up")
        self.assertEqual((relay.dirs["up"].imp.loss, relay.dirs["up"].imp.delay_ms), (0.05, 10.0))
        self.assertEqual(relay.dirs["down"].imp, Impairment())
        self.assertEqual(apply_control(relay, "up\n"), "ok up")
        self.assertEqual(relay.dirs["up"].imp, Impairment())

    def test_bad_lines_change_nothing(self):
        relay = self.relay()
        self.assertTrue(apply_control(relay, "sideways loss=0.1").startswith("error unknown direction"))
        self.assertTrue(apply_control(relay, "up loss=2").startswith("error loss must be"))
        self.assertTrue(apply_control(relay, "up wobble=1").startswith("error unknown impairment"))
        self.assertEqual(relay.dirs["up"].imp.loss, 0.2)


class ControlledProcess(unittest.TestCase):
    """relay.py --control in front of a UDP echo server: loss, then none."""

    def setUp(self):
        self.echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.echo.bind(("127.0.0.1", 0))
        self.echo.settimeout(0.2)
        self.running = True

        def serve():
            while self.running:
                try:
                    data, addr = self.echo.recvfrom(2048)
                except (socket.timeout, OSError):
                    continue
                self.echo.sendto(data, addr)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        upstream = "127.0.0.1:%d" % self.echo.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-u", os.path.join(HERE, "relay.py"), "--listen", "127.0.0.1:0", "--upstream", upstream,
             "--seed", "5", "--up", "loss=0.5", "--control"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        ready = self.proc.stdout.readline().split()
        self.assertEqual(ready[0], "ready")
        host, port = ready[1].rsplit(":", 1)
        self.addr = (host, int(port))
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.settimeout(0.3)

    def tearDown(self):
        self.proc.terminate()
        self.proc.communicate(timeout=10)
        self.running = False
        self.thread.join(timeout=5)
        self.echo.close()
        self.client.close()

    def echoed(self, n: int, tag: bytes) -> int:
        """Sends n numbered datagrams one at a time; how many came back (0.3 s wait each)."""
        back = 0
        for i in range(n):
            self.client.sendto(tag + b"%d" % i, self.addr)
            try:
                while self.client.recv(2048) != tag + b"%d" % i:
                    pass
                back += 1
            except socket.timeout:
                pass
        return back

    def control(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def test_loss_stops_when_told(self):
        lossy = self.echoed(20, b"a")
        self.assertLess(lossy, 20)
        self.assertGreater(lossy, 0)
        self.assertEqual(self.control("up"), "ok up")
        self.assertEqual(self.echoed(40, b"b"), 40)
        self.assertEqual(self.control("down loss=x"), "error could not convert string to float: 'x'")


if __name__ == "__main__":
    unittest.main()
