#!/usr/bin/env bash
# Cold start of each Lambda, without `cargo lambda watch` in the way: the
# release build that SAM and the CDK deploy (`cargo lambda build --release`,
# this machine's architecture), started by a local Lambda Runtime API
# emulator (tests/bench/lambda_runtime_emulator.py, loopback only) that
# times exec -> first `next` poll (init), the first invocation (its first
# TLS handshake included: DynamoDB is moto behind a TLS proxy with a
# self-signed CA passed in SSL_CERT_FILE) and a warm one. A benchmark, not a
# test.
#
#   bash tests/bench/lambda-cold-start.sh
#   TINCAN_COLD_RUNS=9 bash tests/bench/lambda-cold-start.sh
#   TINCAN_LAMBDA_BIN_DIR=/some/lambda bash tests/bench/lambda-cold-start.sh  # prebuilt <fn>/bootstrap
#
# Prints a table, then one JSON line per function (lines starting with `{`):
#   {"name": ..., "binary_bytes": ..., "init_ms": ..., "first_invoke_ms": ...,
#    "warm_invoke_ms": ..., "runs": ...}
# TINCAN_BENCH_JSON=FILE also writes those lines to FILE.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tincan-target}"
RUNS="${TINCAN_COLD_RUNS:-5}"
BIN_DIR="${TINCAN_LAMBDA_BIN_DIR:-}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
work=$(mktemp -d); pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$BIN_DIR" ]; then
  echo "lambda-cold-start: cargo lambda build --release -p tincan-functions (the deployed build)" >&2
  command -v cargo-lambda >/dev/null || { echo "cargo-lambda missing: run tests/setup.sh" >&2; exit 2; }
  cargo lambda build --release -p tincan-functions >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; exit 1; }
  BIN_DIR="$CARGO_TARGET_DIR/lambda"
fi

moto=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$moto" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto" || { echo "moto did not start" >&2; exit 1; }
python3 - "$moto" <<'PY'
import boto3, sys
c = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
    aws_access_key_id="test", **{"aws_" + "secret_access_key": "test"})
c.create_table(TableName="cold-start", BillingMode="PAY_PER_REQUEST",
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
PY

out=$(python3 tests/bench/lambda_runtime_emulator.py --bin-dir "$BIN_DIR" --moto-port "$moto" \
  --runs "$RUNS" --label "${TINCAN_BENCH_LABEL:-}")
echo "$out"
if [ -n "${TINCAN_BENCH_JSON:-}" ]; then
  echo "$out" | grep '^{' >"$TINCAN_BENCH_JSON"
fi
