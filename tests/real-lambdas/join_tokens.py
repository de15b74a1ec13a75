"""Join tokens through the real Lambdas: tokens minted by the Node example
(examples/join-token, node:crypto only) with the API key in
TINCAN_API_KEYS open sockets at the ws-connect Lambda; a forged one gets
401; a join of another room is answered `join-token-room` and a
listen-only participant's unmute `listen-only` by ws-default.

Usage: join_tokens.py PORT (TINCAN_API_KEYS names the key).
"""

import os
import subprocess
import sys

from limits import Ws, account

KEY_ID, SECRET = os.environ["TINCAN_API_KEYS"].split(",")[0].split(":", 1)
EXAMPLE = os.path.join(os.path.dirname(__file__), "../../examples/join-token/mint-join-token.mjs")


def mint(room, sub, listen_only=False, secret=SECRET):
    args = ["node", EXAMPLE, room, sub, "Guest " + sub] + (["--listen-only"] if listen_only else [])
    env = dict(os.environ, TINCAN_API_KEY_ID=KEY_ID, TINCAN_API_KEY_SECRET=secret)
    return subprocess.run(args, env=env, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


room = "jt" + os.urandom(4).hex()
forged = Ws(mint(room, "mallory", secret="f" * 64))
assert forged.status == 401, f"a forged join token got {forged.status}"

member = Ws(account())
assert member.status == 101, member.status
member.send({"action": "join", "room": room})
member.next_of("joined")

guest = Ws(mint(room, "guest-1"))
assert guest.status == 101, f"a valid join token got {guest.status}"
guest.send({"action": "join", "room": "elsewhere"})
err = guest.next_of("error")
assert err["code"] == "join-token-room", err
guest.send({"action": "join", "room": room})
joined = guest.next_of("joined")
assert joined["self"]["userId"] == f"app:{KEY_ID}:guest-1", joined

listener = Ws(mint(room, "listener-1", listen_only=True))
assert listener.status == 101, listener.status
listener.send({"action": "join", "room": room})
joined = listener.next_of("joined")
assert joined["self"]["listenOnly"] is True and joined["self"]["muted"] is True, joined
seen = member.next_of("peer-joined")
while seen["peer"]["userId"] != f"app:{KEY_ID}:listener-1":
    seen = member.next_of("peer-joined")
assert seen["peer"]["listenOnly"] is True, seen
listener.send({"action": "mute", "muted": False})
err = listener.next_of("error")
assert err["code"] == "listen-only", err

for ws in (member, guest, listener):
    ws.close()
print("real-lambdas: join tokens from the Node example are checked by ws-connect and their grants applied")
