"""The ws-sweep Lambda, invoked as its schedule would through `cargo lambda
watch`'s Invoke API: a participant whose connection record expired without
a `$disconnect` (API Gateway's 2-hour cut, simulated by moving the record's
expiry into the past in moto) is taken out of its room, and the room, which
nobody reads again, hears `peer-left`.

Usage: sweep.py PORT INVOKE_PORT (DYNAMODB_ENDPOINT and
TINCAN_CONNECTIONS_TABLE from the environment).
"""

import json
import os
import sys
import time
import urllib.request

import boto3

PORT, INVOKE = int(sys.argv[1]), int(sys.argv[2])
# limits.py's WebSocket client and HTTP helper (it reads the port from argv).
sys.path.insert(0, os.path.dirname(__file__))
from limits import Ws, signed_in  # noqa: E402


def invoke_sweep():
    event = {"version": "0", "id": "real-lambdas", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": "000000000000", "time": "1970-01-01T00:00:00Z",
             "region": "us-east-1", "resources": [], "detail": {}}
    url = f"http://127.0.0.1:{INVOKE}/2015-03-31/functions/ws-sweep/invocations"
    req = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


room = "sweep-" + os.urandom(4).hex()
(ta, ua), (tb, _) = signed_in(), signed_in()
a, b = Ws(ta), Ws(tb)
assert (a.status, b.status) == (101, 101), (a.status, b.status)
a.send({"action": "join", "room": room})
peer_a = a.next_of("joined")["self"]["peerId"]
b.send({"action": "join", "room": room})
b.next_of("joined")

# a's socket stays open, but its record expires as if API Gateway had cut it
# two hours in and no $disconnect had come.
table = boto3.resource("dynamodb", endpoint_url=os.environ["DYNAMODB_ENDPOINT"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing"
                       ).Table(os.environ["TINCAN_CONNECTIONS_TABLE"])
items = table.scan()["Items"]
mine = [i for i in items if i.get("userId") == ua and i.get("peerId") == peer_a]
assert len(mine) == 1, mine
table.update_item(Key={"pk": mine[0]["pk"]}, UpdateExpression="SET expiresAt = :t",
                  ExpressionAttributeValues={":t": int(time.time()) - 10})

swept = invoke_sweep()
assert swept.get("stranded", 0) >= 1, swept
left = b.next_of("peer-left")
assert left["peerId"] == peer_a, left
assert "Item" not in table.get_item(Key={"pk": mine[0]["pk"]}), "the dead connection's record is forgotten"
a.close()
b.close()
print(f"real-lambdas: ws-sweep ended a participant whose connection expired without $disconnect ({swept})")
