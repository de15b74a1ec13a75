"""The limits the Lambdas enforce themselves, through tincan-local forwarding
to them (which applies only what API Gateway applies): a burst past the
message budget is refused with `rate-limited` and a retry-after, a socket
that keeps sending at twice its rate is closed (DeleteConnection; the
emulator closes with 1008), and a user's ninth socket gets 429.

A WebSocket client of its own (RFC 6455, text frames, masked), so the test
needs nothing beyond the standard library. Usage: limits.py PORT
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request

PORT = int(sys.argv[1])
BASE = f"http://127.0.0.1:{PORT}"


def call(method, path, body=None):
    req = urllib.request.Request(BASE + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def signed_in():
    """A new account, logged in: (access token, user id)."""
    name = "lim" + os.urandom(4).hex()
    call("POST", "/auth/register", {"username": name, "password": "pw-" + name, "displayName": name})
    pair = call("POST", "/auth/login", {"username": name, "password": "pw-" + name})
    return pair["accessToken"], pair["user"]["id"]


def account():
    return signed_in()[0]


class Ws:
    def __init__(self, token):
        key = base64.b64encode(os.urandom(16)).decode()
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        self.s.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("socket closed without a close frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """("text", dict) or ("close", code)."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        payload = self._read(n)
        op = b0 & 0x0F
        if op == 8:
            return "close", struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
        if op == 1:
            return "text", json.loads(payload)
        return self.recv()

    def next_of(self, kind):
        """The next text frame of type `kind` (failing on a close)."""
        while True:
            what, msg = self.recv()
            assert what == "text", f"socket closed ({msg}) waiting for {kind}"
            if msg.get("type") == kind:
                return msg

    def close(self):
        self.s.close()

    def goodbye(self, code=1000):
        """Sends a close frame with `code` (None: no code) and closes."""
        payload = b"" if code is None else struct.pack(">H", code)
        mask = os.urandom(4)
        self.s.sendall(bytes([0x88, 0x80 | len(payload)]) + mask
                       + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        self.s.close()


def a_burst_past_the_budget_is_refused():
    ws = Ws(account())
    assert ws.status == 101, ws.status
    for _ in range(60):
        ws.send({"action": "ping"})
    pongs, refused = 0, []
    while pongs + len(refused) < 60:
        kind, msg = ws.recv()
        assert kind == "text", (kind, msg)
        if msg["type"] == "pong":
            pongs += 1
        else:
            assert msg["code"] == "rate-limited", msg
            refused.append(msg["retryAfterMs"])
    # The frames reach the Lambdas in any order; 40 pass, and a frame or two
    # more if the budget refilled while the burst went out.
    assert 40 <= pongs <= 42, pongs
    assert all(1 <= ms <= 1000 for ms in refused), refused
    ws.close()
    print(f"real-lambdas: a burst of 60: {pongs} pongs, {len(refused)} rate-limited "
          f"(retryAfterMs up to {max(refused)})")


def a_socket_at_twice_its_rate_is_closed():
    ws = Ws(account())
    ws.s.setblocking(False)
    refused, code, start = 0, None, time.monotonic()
    # 40 a second against a budget of 20, for at most 20 s.
    for i in range(800):
        try:
            ws.send({"action": "ping"})
        except OSError:
            break
        deadline = start + (i + 1) / 40
        while True:
            try:
                ws.s.settimeout(max(0.0, deadline - time.monotonic()))
                kind, msg = ws.recv()
            except (socket.timeout, BlockingIOError):
                break
            except EOFError:
                code = "eof"
                break
            if kind == "close":
                code = msg
                break
            if msg.get("code") == "rate-limited":
                refused += 1
        if code is not None:
            break
    ws.close()
    assert code == 1008, f"not closed with 1008 ({code}) after {time.monotonic() - start:.1f} s"
    assert refused > 0
    print(f"real-lambdas: a socket at twice its rate was closed with 1008 after "
          f"{time.monotonic() - start:.1f} s and {refused} refusals")


def a_users_ninth_socket_gets_429():
    token = account()
    tabs = [Ws(token) for _ in range(8)]
    assert all(t.status == 101 for t in tabs), [t.status for t in tabs]
    ninth = Ws(token)
    assert ninth.status == 429, ninth.status
    ninth.close()
    # One closes: once its $disconnect has run, its place is free again.
    tabs.pop().close()
    for _ in range(100):
        again = Ws(token)
        if again.status == 101:
            break
        again.close()
        time.sleep(0.1)
    assert again.status == 101, again.status
    for t in tabs + [again]:
        t.close()
    print("real-lambdas: a user's ninth socket gets 429; a closed one frees its place")


if __name__ == "__main__":
    a_burst_past_the_budget_is_refused()
    a_socket_at_twice_its_rate_is_closed()
    a_users_ninth_socket_gets_429()
