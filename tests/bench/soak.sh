#!/usr/bin/env bash
# Soak: 1000 WebSocket clients in rooms of 2-4 on one local stack for ten
# minutes, each sending a signal to the next peer in its room every second
# (600,000 signals), through tincan-load. It must lose no signal, and
# memory must stay flat. The stack runs in its own process
# (TINCAN_LOAD_SPAWN=1), so it prints the server's own RSS idle, once
# everyone has joined and at the end ("server rss ..."), next to "signals
# lost" and the load process's resident memory (start, joined, end, peak).
#
#   bash tests/bench/soak.sh                              # the full soak
#   CLIENTS=200 ROUNDS=60 bash tests/bench/soak.sh        # a quick look
#   DYNAMODB_ENDPOINT=http://127.0.0.1:PORT bash tests/bench/soak.sh   # state in DynamoDB (moto)
#
# Env: CLIENTS (1000), ROUNDS (600), GAP_MS (1000), PROFILE (release, or
# debug: the suite's own build, tests/build, or TINCAN_BIN_DIR when set),
# TINCAN_LOAD_SPAWN (1; 0 runs the stack in the load process), CARGO_TARGET_DIR. Manual, not part of the
# suite: it takes ROUNDS x GAP_MS and, at 1000 clients, most of two cores.
# Exits non-zero if a signal was lost or a client failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tincan-target}"
CLIENTS=${CLIENTS:-1000}
ROUNDS=${ROUNDS:-600}
GAP_MS=${GAP_MS:-1000}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p tincan-load
  bin="$CARGO_TARGET_DIR/release/tincan-load"
else
  bin="${TINCAN_BIN_DIR:-$(bash tests/build)}/tincan-load"
fi
echo "soak: $CLIENTS clients, $ROUNDS signals each, one every $GAP_MS ms ($((ROUNDS * GAP_MS / 1000)) s)"
TINCAN_LOAD_SPAWN=${TINCAN_LOAD_SPAWN:-1} RUST_LOG=${RUST_LOG:-warn} \
  "$bin" "$CLIENTS" "$ROUNDS" "$GAP_MS"
