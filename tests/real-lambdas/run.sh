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
if TINCAN_LOAD_TARGET="ws://127.0.0.1:$local_port" timeout 600 "$BIN/tincan-load" 6 3 100; then
  echo "real-lambdas: 1 passed, 0 failed"
else
  echo "--- cargo lambda watch log"; tail -40 "$work/lambda.log"
  echo "--- tincan-local log"; tail -20 "$work/local.log"
  echo "real-lambdas: 0 passed, 1 failed"
  exit 1
fi
