#!/usr/bin/env bash
# Runs the browser tests against real tincan-local servers on loopback.
#
#   unshare -n bash -c 'ip link set lo up; bash tests/browser/run.sh'
#
# Starts two servers on free 127.0.0.1 ports, each with its own temporary
# data dir and a random JWT secret: the main one, and one with
# TINCAN_ROOM_MAX=2 for the room-full test. Waits for /healthz, runs
# `node --test`, and stops the servers on exit. Extra arguments go to
# `node --test` (e.g. --test-name-pattern=mute).
#
# Every test user registers from 127.0.0.1, so the per-address registration
# limit is off (TINCAN_REGISTRATIONS_PER_ADDR=0) unless set.
#
# Tests that need a server with other settings (e.g. TINCAN_INVOKE_JITTER_MS,
# TINCAN_MAX_CONNECTION_SECS) start their own with helpers.js `startStack()`,
# from the binary and secret this script passes on. Every TINCAN_* variable
# set when calling this script reaches every server, e.g.
#   TINCAN_INVOKE_JITTER_MS=50 bash tests/browser/run.sh
#
# Env: TINCAN_LOCAL_BIN (default: tincan-local in TINCAN_BIN_DIR, or from
# the suite's one build, tests/build, so the binary matches the tree), CHROMIUM_PATH (default
# /usr/bin/chromium), UPDATE_SCREENSHOTS=1 (refresh web/screenshots/call.png).
# Screenshots and server logs go to tests/output/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/tests/output"
mkdir -p "$out"

if [ -z "${TINCAN_LOCAL_BIN:-}" ] && [ -z "${TINCAN_BIN_DIR:-}" ]; then
  echo "run.sh: building (tests/build)" >&2
  TINCAN_BIN_DIR="$(bash "$root/tests/build")"
fi
bin="${TINCAN_LOCAL_BIN:-$TINCAN_BIN_DIR/tincan-local}"
[ -x "$bin" ] || { echo "run.sh: $bin missing" >&2; exit 1; }
if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/typescript" ] \
  || [ ! -d "$here/node_modules/axe-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$chromium" ] || { echo "run.sh: $chromium missing (apt-get install chromium; see tests/setup.sh)" >&2; exit 1; }

free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

healthy() {
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
    .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"
}

tmp="$(mktemp -d /tmp/tincan-browser.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

secret="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

# start NAME ROOM_MAX -> prints the base URL; the Management API's URL goes
# to $tmp/NAME.management
start_server() {
  local name="$1" room_max="$2" port turn management
  port="$(free_port)"
  turn="$(free_port)"
  management="$(free_port)"
  mkdir -p "$tmp/$name"
  echo "http://127.0.0.1:$management" >"$tmp/$name.management"
  TINCAN_ADDR="127.0.0.1:$port" \
  TINCAN_MANAGEMENT_ADDR="127.0.0.1:$management" \
  TINCAN_DATA_DIR="$tmp/$name" \
  TINCAN_JWT_SECRET="$secret" \
  TINCAN_ROOM_MAX="$room_max" \
  TINCAN_REGISTRATIONS_PER_ADDR="${TINCAN_REGISTRATIONS_PER_ADDR:-0}" \
  TINCAN_TURN_ADDR="127.0.0.1:$turn" \
  TINCAN_WEB_DIR="$root/web" \
  RUST_LOG="${RUST_LOG:-info}" \
    "$bin" >"$out/tincan-local-$name.log" 2>&1 &
  pids+=("$!")
  local deadline=$((SECONDS + 90))
  until healthy "http://127.0.0.1:$port/healthz"; do
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "run.sh: tincan-local ($name) exited; log:" >&2
      tail -n 40 "$out/tincan-local-$name.log" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "run.sh: tincan-local ($name) not healthy (GET /healthz) after 90 s" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "http://127.0.0.1:$port"
}

main_url=""
small_url=""
main_url_file="$tmp/main.url"
start_server main 8 >"$main_url_file"
main_url="$(cat "$main_url_file")"
start_server small 2 >"$tmp/small.url"
small_url="$(cat "$tmp/small.url")"
echo "run.sh: tincan-local at $main_url (room max 8) and $small_url (room max 2)"

cd "$here"
# --test-timeout bounds each test file as a whole too (node 20): it must
# exceed the longest file's tests together (package.test.js: two typecheck
# runs, npm pack, a 2-page and a 5-page call, the last allowed 300 s on its
# own), or a slow run is cut inside tests still within their own limits.
# Each long test keeps its own timeout; the whole suite stays under 1200 s.
TINCAN_URL="$main_url" TINCAN_SMALL_URL="$small_url" TINCAN_JWT_SECRET="$secret" \
TINCAN_MANAGEMENT_URL="$(cat "$tmp/main.management")" CHROMIUM_PATH="$chromium" \
TINCAN_LOCAL_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" TINCAN_WEB_DIR="$root/web" \
  timeout 1200 node --test --test-concurrency=1 --test-timeout=420000 "$@" ./*.test.js
