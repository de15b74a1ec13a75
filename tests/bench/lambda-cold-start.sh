#!/usr/bin/env bash
# Cold-start figures for the Lambdas under `cargo lambda watch` (release
# build, this machine's architecture): for each function, the time of its
# first invocation (process start + init: config, SDK clients) and of a warm
# one, against moto as DynamoDB. A benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tincan-target}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
work=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release -p tincan-functions --bins >/dev/null 2>&1
cargo build -p tincan-local >/dev/null 2>&1
moto=$(free_port); invoke=$(free_port)
unset AWS_ACCESS_KEY_ID
export AWS_REGION=us-east-1
export TINCAN_JWT_SECRET="cold-start-secret-cold-start-secret-xx" TINCAN_TURN_SECRET=turn
export DYNAMODB_ENDPOINT="http://127.0.0.1:$moto" TINCAN_CONNECTIONS_TABLE=cold-start TINCAN_DATA_DIR="$work/data"
moto_server -H 127.0.0.1 -p "$moto" >"$work/moto.log" 2>&1 & pids+=($!)
wait_port "$moto"
python3 - "$moto" <<'PY'
import boto3, sys
c = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
    aws_access_key_id="test", **{"aws_" + "secret_access_key": "test"})
c.create_table(TableName="cold-start", BillingMode="PAY_PER_REQUEST",
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
PY
# The local stack's Management API answers pushes (410 for these ids) at once.
gw=$(free_port); mgmt=$(free_port)
TINCAN_ADDR="127.0.0.1:$gw" TINCAN_MANAGEMENT_ADDR="127.0.0.1:$mgmt" TINCAN_TURN=off TINCAN_DATA_DIR="$work/gw" RUST_LOG=warn \
  "$CARGO_TARGET_DIR/debug/tincan-local" >"$work/gw.log" 2>&1 & pids+=($!)
wait_port "$gw"
export TINCAN_WS_ENDPOINT="http://127.0.0.1:$mgmt/local"
RUST_LOG=warn cargo lambda watch --release -p tincan-functions -A 127.0.0.1 -P "$invoke" --ignore-changes \
  >"$work/watch.log" 2>&1 & pids+=($!)
wait_port "$invoke"

event() { # connection body
  sed -e "s/CONNECTION/$1/" -e 's/TOKEN//' -e 's/DOMAIN/localhost/' -e 's/STAGE/local/' \
    functions/tests/fixtures/message.json | python3 -c 'import json,sys; e=json.load(sys.stdin); e["body"]=sys.argv[1]; print(json.dumps(e))' "$2"
}
invoke_ms() { # function payload-file
  local start end
  start=$(date +%s%N)
  curl -s -o /dev/null -X POST --data-binary @"$2" "http://127.0.0.1:$invoke/2015-03-31/functions/$1/invocations"
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
event c1 '{"action":"ping"}' >"$work/msg.json"
sed -e 's/CONNECTION/c1/' -e 's/TOKEN/x/' -e 's/DOMAIN/localhost/' -e 's/STAGE/local/' functions/tests/fixtures/connect.json >"$work/connect.json"
sed -e 's/CONNECTION/c1/' -e 's/DOMAIN/localhost/' -e 's/STAGE/local/' functions/tests/fixtures/disconnect.json >"$work/disconnect.json"
echo '{"version":"2.0","routeKey":"GET /me","rawPath":"/me","rawQueryString":"","headers":{},"requestContext":{"http":{"method":"GET","path":"/me","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"bench"},"requestId":"r","routeKey":"GET /me","stage":"$default","timeEpoch":0},"isBase64Encoded":false}' >"$work/http.json"

printf '%-14s %12s %12s\n' function "cold ms" "warm ms"
for f in ws-connect:connect ws-default:msg ws-disconnect:disconnect http-api:http; do
  name=${f%%:*}; payload="$work/${f##*:}.json"
  cold=$(invoke_ms "$name" "$payload"); warm=$(invoke_ms "$name" "$payload")
  printf '%-14s %12s %12s\n' "$name" "$cold" "$warm"
done
