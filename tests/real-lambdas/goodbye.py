"""A client that closes its socket with 1000, without `leave`, has left: the
others hear `peer-left` within 2 s through the real ws-disconnect Lambda
(tincan-local forwards the close code as API Gateway's
`disconnectStatusCode`), while a socket that drops without a close frame
keeps its participant for the resume grace.

Usage: goodbye.py PORT
"""

import socket
import time

from limits import Ws, account


def joined(token, room):
    ws = Ws(token)
    assert ws.status == 101, ws.status
    ws.send({"action": "join", "room": room})
    return ws, ws.next_of("joined")["self"]["peerId"]


def peer_left_within(ws, seconds):
    """The peerId of the next `peer-left` within `seconds`, or None."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ws.s.settimeout(left)
        try:
            kind, msg = ws.recv()
        except socket.timeout:
            return None
        if kind == "text" and msg["type"] == "peer-left":
            return msg["peerId"]


room = "bye-" + str(int(time.time() * 1000))
watcher, _ = joined(account(), room)

leaver, leaver_id = joined(account(), room)
start = time.monotonic()
leaver.goodbye(1000)
heard = peer_left_within(watcher, 2.0)
assert heard == leaver_id, f"no peer-left for a 1000 close within 2 s (heard {heard!r})"
print(f"real-lambdas: a socket closed with 1000 left at once "
      f"(peer-left after {1000 * (time.monotonic() - start):.0f} ms)")

dropper, _ = joined(account(), room)
dropper.close()  # no close frame: a drop
assert peer_left_within(watcher, 2.0) is None, "a dropped socket lost its grace"
print("real-lambdas: a dropped socket keeps its participant for the grace")
watcher.close()
