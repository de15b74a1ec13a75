#!/usr/bin/env bash
# The "local, real Lambdas" way of running Tincan, tested end to end: moto
# as DynamoDB, the real ws-* Lambda binaries under `cargo lambda watch`, and
# tincan-local forwarding every WebSocket event to them. tincan-load then
# puts clients in rooms and checks every signal arrives.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tincan-target}"
BIN="$CARGO_TARGET_DIR/debug"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "real-lambdas: nothing listens on $1 after $2 s" >&2; return 1
}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

moto=$(free_port); invoke=$(free_port); local_port=$(free_port); mgmt_port=$(free_port)
# No AWS credentials: with DYNAMODB_ENDPOINT set, the SDK signs with dummy ones.
unset AWS_ACCESS_KEY_ID
export AWS_REGION=us-east-1
export TINCAN_JWT_SECRET="real-lambdas-$(date +%s%N)-secret-secret-secret"
export DYNAMODB_ENDPOINT="http://127.0.0.1:$moto"
export TINCAN_CONNECTIONS_TABLE=real-lambdas-connections

moto_server -H 127.0.0.1 -p "$moto" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto" 30

# The Lambdas push through the gateway's Management API, which has a
# listener of its own (never the public port).
TINCAN_WS_ENDPOINT="http://127.0.0.1:$mgmt_port/local" RUST_LOG=warn \
  timeout 600 cargo lambda watch -p tincan-functions --invoke-address 127.0.0.1 -P "$invoke" \
  --ignore-changes >"$work/lambda.log" 2>&1 &
pids+=($!)
wait_port "$invoke" 120

TINCAN_ADDR="127.0.0.1:$local_port" TINCAN_MANAGEMENT_ADDR="127.0.0.1:$mgmt_port" TINCAN_DATA_DIR="$work/data" TINCAN_TURN=off \
TINCAN_LAMBDA_URL="http://127.0.0.1:$invoke" RUST_LOG=warn \
  "$BIN/tincan-local" >"$work/local.log" 2>&1 &
pids+=($!)
wait_port "$local_port" 60
wait_port "$mgmt_port" 10

echo "real-lambdas: moto :$moto, cargo lambda watch :$invoke, tincan-local :$local_port (management :$mgmt_port)"
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

if TINCAN_LOAD_TARGET="ws://127.0.0.1:$local_port" timeout 600 "$BIN/tincan-load" 6 3 100 \
  && deleted_account_is_refused; then
  echo "real-lambdas: 2 passed, 0 failed"
else
  echo "--- cargo lambda watch log"; tail -40 "$work/lambda.log"
  echo "--- tincan-local log"; tail -20 "$work/local.log"
  echo "real-lambdas: 0 passed, 1 failed"
  exit 1
fi
