#!/usr/bin/env bash
# Audio across signaling-socket cuts, measured in Chromium: a two-person call
# on a tincan-local that cuts every WebSocket after CUT_SECS
# (TINCAN_MAX_CONNECTION_SECS, as API Gateway does after 2 hours), run twice:
# with resume (the client keeps its peer connections) and with the old full
# rejoin (`?resume=0`: a new participant, every peer connection rebuilt),
# after a control run without cuts (the noise floor of the sampling).
#
# Per cut and page it prints the time from the cut (the client's `drop`) to
# `resumed` (or `joined`), and the audio gap: the longest time between two
# 100 ms getStats() samples that saw inbound audio packets rise, from 1 s
# before the cut to 6 s after it. Then the medians and maxima, next to the
# figures of the full rejoin before resume existed (rejoin 1.1-1.4 s, audio
# back 2.4-3.0 s, measured by the old reconnect test with its 0.5 s first
# retry and a token refresh). On loopback ICE and DTLS take ~0.2 s, so the
# rejoin here understates what rebuilding costs on a real network (gathering,
# checks over real RTTs, a TURN allocation, the DTLS handshake); resume costs
# the media nothing anywhere. Manual, not part of the test suite.
#
#   bash tests/bench/socket-cut-resume.sh
#   CUTS=10 CUT_SECS=6 MODES=resume bash tests/bench/socket-cut-resume.sh
#
# Runs itself in a loopback-only network namespace (unshare -n, as root).
# Env: CUTS per page and mode (5), CUT_SECS (10), MODES ("control resume rejoin"),
# TINCAN_INVOKE_JITTER_MS (0), TINCAN_LOCAL_BIN (else built into
# CARGO_TARGET_DIR), CHROMIUM_PATH (/usr/bin/chromium).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

if [ -z "${TINCAN_BENCH_NETNS:-}" ]; then
  exec unshare -n env TINCAN_BENCH_NETNS=1 bash -c 'ip link set lo up && exec bash "$0"' "$0"
fi

if [ -z "${TINCAN_LOCAL_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p tincan-local)
  TINCAN_LOCAL_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/tincan-local"
fi
export TINCAN_LOCAL_BIN
if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
export TINCAN_WEB_DIR="$root/web"
exec node "$root/tests/bench/socket-cut-resume.mjs"
