#!/usr/bin/env bash
# The "local, real Lambdas" way of running Tincan, tested end to end: moto
# as DynamoDB, the real ws-* Lambda binaries behind `cargo lambda watch`'s
# Lambda APIs, and tincan-local forwarding every WebSocket event to them.
# tincan-load then puts clients in rooms and checks every signal arrives.
#
# The binaries come from the suite's one build (TINCAN_BIN_DIR, or
# tests/build): `cargo lambda watch --only-lambda-apis` serves the Invoke and
# Runtime APIs, and each function runs as its own process polling its queue,
# as a Lambda container does, so nothing compiles while the clients' clocks
# run (left to itself, `cargo lambda watch` builds each function on its first
# invocation, with a feature set of its own). ws-default runs as two
# instances: frames of one socket are handled by concurrent containers.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${TINCAN_BIN_DIR:-$(bash tests/build)}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port seconds what
  for _ in $(seq 1 $(( $2 * 10 ))); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "real-lambdas: $3 does not listen on 127.0.0.1:$1 after $2 s" >&2; return 1
}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; [ -z "${KEEP_WORK:-}" ] || echo "kept $work"
}
trap cleanup EXIT

moto=$(free_port); invoke=$(free_port); local_port=$(free_port); mgmt_port=$(free_port)
# No AWS credentials: with DYNAMODB_ENDPOINT set, the SDK signs with dummy ones.
unset AWS_ACCESS_KEY_ID
export AWS_REGION=us-east-1
export TINCAN_JWT_SECRET="real-lambdas-$(date +%s%N)-secret-secret-secret"
export DYNAMODB_ENDPOINT="http://127.0.0.1:$moto"
export TINCAN_CONNECTIONS_TABLE=real-lambdas-connections
# An app's API key: the ws-connect Lambda accepts its join tokens.
export TINCAN_API_KEYS="real-lambdas:$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

moto_server -H 127.0.0.1 -p "$moto" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto" 90 "moto (DynamoDB)"

RUST_LOG=warn timeout 900 cargo lambda watch --only-lambda-apis -p tincan-functions --invoke-address 127.0.0.1 -P "$invoke" \
  --ignore-changes >"$work/watch.log" 2>&1 &
pids+=($!)
wait_port "$invoke" 90 "cargo lambda watch (Invoke and Runtime APIs)"

# The Lambdas push through the gateway's Management API, which has a
# listener of its own (never the public port).
lambda_instance() { # function
  AWS_LAMBDA_FUNCTION_NAME="$1" AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 \
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$invoke/.rt/$1" \
  TINCAN_WS_ENDPOINT="http://127.0.0.1:$mgmt_port/local" RUST_LOG=warn \
    "$BIN/$1" >>"$work/lambda.log" 2>&1 &
  pids+=($!)
  lambda_pids+=($!)
}
# Ready when ws-connect answers an unauthenticated $connect (401, from the
# real handler); fails at once if an instance exits, with its log.
lambdas_ready() {
  local deadline=$((SECONDS + 90)) p reply
  for (( ; ; )); do
    for p in "${lambda_pids[@]}"; do
      kill -0 "$p" 2>/dev/null || { echo "real-lambdas: a Lambda instance exited at start-up" >&2; return 1; }
    done
    reply=$(python3 - "$invoke" <<'PY' || true
import json, sys, urllib.request
event = {"requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "messageDirection": "IN",
         "stage": "local", "connectionId": "readiness-probe", "apiId": "local", "requestId": "probe",
         "connectedAt": 0, "requestTimeEpoch": 0, "identity": {"sourceIp": "127.0.0.1"}},
         "queryStringParameters": {}, "headers": {}, "isBase64Encoded": False}
url = f"http://127.0.0.1:{sys.argv[1]}/2015-03-31/functions/ws-connect/invocations"
req = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")
with urllib.request.urlopen(req, timeout=5) as r:
    print(json.loads(r.read()).get("statusCode"))
PY
)
    [ "$reply" = 401 ] && return 0
    if [ -n "$reply" ]; then
      echo "real-lambdas: ws-connect answered an unauthenticated \$connect with $reply, not 401" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "real-lambdas: ws-connect did not answer a readiness invocation within 90 s" >&2; return 1
    fi
    sleep 0.5
  done
}

lambda_pids=()
for fn in ws-connect ws-disconnect ws-default ws-default ws-sweep; do
  [ -x "$BIN/$fn" ] || { echo "real-lambdas: $BIN/$fn missing (bash tests/build)" >&2; exit 1; }
  lambda_instance "$fn"
done

TINCAN_ADDR="127.0.0.1:$local_port" TINCAN_MANAGEMENT_ADDR="127.0.0.1:$mgmt_port" TINCAN_DATA_DIR="$work/data" TINCAN_TURN=off \
TINCAN_LAMBDA_URL="http://127.0.0.1:$invoke" RUST_LOG=warn \
  "$BIN/tincan-local" >"$work/local.log" 2>&1 &
pids+=($!)
show_logs() {
  echo "--- Lambda log"; tail -40 "$work/lambda.log"
  echo "--- cargo lambda watch log"; tail -20 "$work/watch.log"
  echo "--- tincan-local log"; tail -20 "$work/local.log"
}
if ! { wait_port "$local_port" 90 "tincan-local" && wait_port "$mgmt_port" 30 "tincan-local's Management API" \
  && lambdas_ready; }; then
  show_logs
  echo "real-lambdas: 0 passed, 1 failed (the stack did not start)"
  exit 1
fi
echo "real-lambdas: moto :$moto, cargo lambda watch --only-lambda-apis :$invoke (5 Lambda instances), tincan-local :$local_port (management :$mgmt_port)"
# A deleted account's tokens no longer open sockets: the local HTTP API
# writes the deleted-user marker that the ws-connect Lambda checks.
deleted_account_is_refused() {
  python3 - "$local_port" <<'PY'
import base64, json, os, socket, sys, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"

def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
        return r.status, json.loads(raw) if raw else None

def upgrade(token):
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    s.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    status = s.recv(4096).split(b"\r\n", 1)[0].decode()
    s.close()
    return status

name = "gone" + os.urandom(4).hex()
call("POST", "/auth/register", {"username": name, "password": "pw-" + name, "displayName": "Gone"})
_, pair = call("POST", "/auth/login", {"username": name, "password": "pw-" + name})
token = pair["accessToken"]
before = upgrade(token)
assert " 101 " in before + " ", f"a live account's socket was refused: {before}"
status, _ = call("DELETE", "/me", {"password": "pw-" + name}, token)
assert status == 204, status
after = upgrade(token)
assert " 401 " in after + " ", f"a deleted account's token still opens a socket: {after}"
print("real-lambdas: a deleted account's token is refused at $connect")
PY
}

# After a password change, another session's access token no longer opens
# a socket: the HTTP API writes the revoked-session marker that the
# ws-connect Lambda checks; the session that changed it still connects.
revoked_session_is_refused() {
  python3 - "$local_port" <<'PY'
import json, os, sys
sys.path.insert(0, "tests/real-lambdas")
from limits import Ws, call
import urllib.request

def change_password(token, current, new):
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/me/password", method="POST",
                                 data=json.dumps({"currentPassword": current, "newPassword": new}).encode())
    req.add_header("content-type", "application/json")
    req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status

name = "rev" + os.urandom(4).hex()
call("POST", "/auth/register", {"username": name, "password": "pw-" + name, "displayName": "Rev"})
here = call("POST", "/auth/login", {"username": name, "password": "pw-" + name})["accessToken"]
there = call("POST", "/auth/login", {"username": name, "password": "pw-" + name})["accessToken"]
ws = Ws(there)
assert ws.status == 101, ws.status
ws.close()
assert change_password(here, "pw-" + name, "new-pw-" + name) == 204
after = Ws(there)
assert after.status == 401, f"a revoked session's token still opens a socket: {after.status}"
mine = Ws(here)
assert mine.status == 101, f"the session that changed the password was refused: {mine.status}"
mine.close()
print("real-lambdas: after a password change, another session's token is refused at $connect")
PY
}

# The message budget and the socket cap, enforced by the Lambdas themselves
# (tincan-local forwarding applies only API Gateway's own limits).
limits_are_enforced_by_the_lambdas() {
  timeout 120 python3 tests/real-lambdas/limits.py "$local_port"
}

# A close with 1000 is a leave; a drop keeps the resume grace.
a_goodbye_leaves_at_once() {
  timeout 60 python3 tests/real-lambdas/goodbye.py "$local_port"
}

# Join tokens minted by the Node example, checked by the ws-connect Lambda;
# their room and listen-only grants applied by ws-default.
join_tokens_are_checked_by_the_lambdas() {
  timeout 120 python3 tests/real-lambdas/join_tokens.py "$local_port"
}

# The scheduled sweep, invoked as EventBridge would: a participant whose
# connection ended without a $disconnect leaves its room.
the_sweep_ends_stranded_participants() {
  timeout 120 python3 tests/real-lambdas/sweep.py "$local_port" "$invoke"
}

# Two http-api processes (two containers of one function, each on a Runtime
# API of its own) sharing the throttles table: wrong passwords spread over
# them hit the limit at the shared count. They need MongoDB: SecantusDB, in
# memory.
failed_logins_are_counted_across_processes() {
  local mongo; mongo=$(free_port)
  secantusd-py --host 127.0.0.1 --port "$mongo" --storage-path :memory: >"$work/secantus.log" 2>&1 &
  pids+=($!)
  wait_port "$mongo" 60 "SecantusDB" || return 1
  python3 - <<'PY' || return 1
import os, boto3
boto3.client("dynamodb", endpoint_url=os.environ["DYNAMODB_ENDPOINT"], region_name="us-east-1",
             aws_access_key_id="testing", aws_secret_access_key="testing").create_table(
    TableName="real-lambdas-throttles", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
PY
  MONGODB_URI="mongodb://127.0.0.1:$mongo" TINCAN_MONGODB_DB=real-lambdas \
  TINCAN_THROTTLES_TABLE=real-lambdas-throttles \
    timeout 300 python3 tests/real-lambdas/shared_throttle.py "$BIN/http-api" 2>>"$work/lambda.log"
}

if TINCAN_LOAD_TARGET="ws://127.0.0.1:$local_port" timeout 600 "$BIN/tincan-load" 6 3 100 \
  && deleted_account_is_refused && revoked_session_is_refused && limits_are_enforced_by_the_lambdas \
  && a_goodbye_leaves_at_once && join_tokens_are_checked_by_the_lambdas \
  && the_sweep_ends_stranded_participants && failed_logins_are_counted_across_processes; then
  echo "real-lambdas: 8 passed, 0 failed"
else
  show_logs
  echo "real-lambdas: 0 passed, 1 failed"
  exit 1
fi
