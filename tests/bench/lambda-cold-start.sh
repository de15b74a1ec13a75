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
# In the same run, the same functions built at opt-level 3 (everything
# else as deployed: `cargo build` with the `config` of functions/Cargo.toml's
# `[package.metadata.lambda.build]`, opt-level replaced) are started in turn
# with the deployed ones, and the table ends with the ratios: what the
# size-oriented opt-level costs in latency. TINCAN_COLD_COMPARE=0 skips it.
# A SecantusDB (MongoDB wire protocol) gives the functions their MongoDB,
# as Atlas does in AWS.
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

COMPARE_DIR=""
if [ "${TINCAN_COLD_COMPARE:-1}" != 0 ]; then
  echo "lambda-cold-start: the same build at opt-level 3, to compare" >&2
  mapfile -t configs < <(python3 - <<'PY'
import tomllib
with open("functions/Cargo.toml", "rb") as f:
    config = tomllib.load(f)["package"]["metadata"]["lambda"]["build"]["config"]
for c in config:
    print('profile.release.opt-level=3' if c.startswith("profile.release.opt-level") else c)
PY
)
  triple="$(rustc -vV | sed -n 's/^host: //p')"
  args=()
  for c in "${configs[@]}"; do args+=(--config "$c"); done
  cargo build --release -p tincan-functions --target "$triple" "${args[@]}" >"$work/build-o3.log" 2>&1 \
    || { tail -30 "$work/build-o3.log" >&2; exit 1; }
  COMPARE_DIR="$work/opt-level-3"
  for f in ws-connect ws-default ws-disconnect http-api; do
    mkdir -p "$COMPARE_DIR/$f"
    cp "$CARGO_TARGET_DIR/$triple/release/$f" "$COMPARE_DIR/$f/bootstrap"
  done
fi

mongo=$(free_port)
secantusd-py --host 127.0.0.1 --port "$mongo" --storage-path :memory: >"$work/secantus.log" 2>&1 &
pids+=($!)
wait_port "$mongo" || { echo "SecantusDB did not start (tests/setup.sh installs it)" >&2; exit 1; }

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

compare=()
[ -n "$COMPARE_DIR" ] && compare=(--compare-dir "$COMPARE_DIR" --compare-label "opt-level 3")
out=$(python3 tests/bench/lambda_runtime_emulator.py --bin-dir "$BIN_DIR" --moto-port "$moto" \
  --runs "$RUNS" --label "${TINCAN_BENCH_LABEL:-deployed}" --mongodb-uri "mongodb://127.0.0.1:$mongo" \
  "${compare[@]}")
echo "$out"
if [ -n "${TINCAN_BENCH_JSON:-}" ]; then
  echo "$out" | grep '^{' >"$TINCAN_BENCH_JSON"
fi
