#!/usr/bin/env bash
# What a listener hears, under a bad network: the project's page in
# Chromium, a speech WAV (espeak-ng, 48 kHz) as the speaker's microphone,
# the listener's TURN leg through the seeded impairment relay
# (tests/impair/relay.py), raw PCM recorded in the listening page, aligned
# with the source and scored with wideband PESQ (P.862.2), plus getStats
# (concealed, inserted/removed samples, jitter buffer) and the mouth-to-ear
# delay. See docs/benchmarks.md.
#
#   QUICK=1 bash tests/bench/audio-quality.sh
#
# Paths: `mesh` (two pages, both `?relay=1`: the mesh link relayed through
# the embedded TURN server; a direct mesh link cannot be impaired by a relay
# in user space) and `sfu` (TINCAN_MESH_MAX=1: the two pages on the embedded
# SFU, the listener reaching it through TURN). Impairments apply to what the
# listener receives (the relay's "down" direction), seeded.
#
# QUICK=1: {mesh, sfu} x {clean, loss20}. Otherwise also loss5, loss10,
# burst10 (10 % in bursts of mean 3), jitter (80 +- 30 ms, reordering) and
# cap24 (24 kbit/s, 200 ms queue; on the listener's downlink here).
# Ends with one line per row: `mos PATH IMPAIRMENT SCORE`.
#
# Env: PATHS ("mesh sfu"), CELLS (a subset of the impairments above, e.g.
# "clean loss20"), TINCAN_BIN_DIR (a built tincan-local; default: tests/build), SEED (7),
# REPEAT (1: runs per cell, each its own line), RECORD_SECS (26), OUT
# (tests/output/audio-quality), CHROMIUM_PATH. Needs root (unshare -n);
# installs espeak-ng (apt) and numpy, scipy, pesq in ~/.cache/tincan-audio-venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/bench/audio-quality"
VENV="$HOME/.cache/tincan-audio-venv"
export SEED="${SEED:-7}" REPEAT="${REPEAT:-1}" RECORD_SECS="${RECORD_SECS:-26}" QUICK="${QUICK:-0}"
export OUT="${OUT:-$root/tests/output/audio-quality}"

if [ -z "${AQ_IN_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "audio-quality: needs root (unshare -n)" >&2; exit 1; }
  command -v espeak-ng >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng >/dev/null
  if ! "$VENV/bin/python" -c 'import numpy, scipy, pesq' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check numpy scipy pesq
  fi
  [ -d "$root/tests/browser/node_modules/playwright-core" ] \
    || (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
  [ -n "${TINCAN_BIN_DIR:-}" ] || TINCAN_BIN_DIR="$(bash "$root/tests/build")"
  export TINCAN_BIN_DIR AQ_IN_NETNS=1
  exec unshare -n bash -c 'ip link set lo up && exec bash "$0"' "$0"
fi

bin="$TINCAN_BIN_DIR/tincan-local"
[ -x "$bin" ] || { echo "audio-quality: $bin missing" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
tmp="$(mktemp -d /tmp/tincan-aq.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$VENV/bin/python" "$here/audio.py" speech "$OUT"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

# start NAME MESH_MAX: sets URL_NAME and TURN_NAME
start_stack() {
  local name="$1" port turn
  port="$(free_port)"; turn="$(free_port)"
  mkdir -p "$tmp/$name"
  TINCAN_ADDR="127.0.0.1:$port" TINCAN_MANAGEMENT_ADDR="127.0.0.1:$(free_port)" \
  TINCAN_DATA_DIR="$tmp/$name" TINCAN_JWT_SECRET="$secret" TINCAN_MESH_MAX="$2" \
  TINCAN_REGISTRATIONS_PER_ADDR=0 TINCAN_TURN_ADDR="127.0.0.1:$turn" TINCAN_WEB_DIR="$root/web" \
  RUST_LOG=warn "$bin" >"$OUT/tincan-local-$name.log" 2>&1 &
  pids+=("$!")
  local deadline=$((SECONDS + 90))
  until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] && kill -0 "${pids[-1]}" 2>/dev/null \
      || { echo "audio-quality: tincan-local ($name) did not start" >&2; tail -n 20 "$OUT/tincan-local-$name.log" >&2; exit 1; }
    sleep 0.2
  done
  printf -v "URL_$name" '%s' "http://127.0.0.1:$port"
  printf -v "TURN_$name" '%s' "127.0.0.1:$turn"
}
start_stack mesh 4
start_stack sfu 1

declare -A IMPAIR=(
  [clean]="" [loss5]="loss=0.05" [loss10]="loss=0.1" [loss20]="loss=0.2"
  [burst10]="loss=0.1,burst=3" [jitter]="delay=80,jitter=30,reorder=1" [cap24]="rate=24,queue=200"
)
if [ -n "${CELLS:-}" ]; then
  read -ra cells <<<"$CELLS"
elif [ "$QUICK" = 1 ]; then
  cells=(clean loss20)
else
  cells=(clean loss5 loss10 loss20 burst10 jitter cap24)
fi

results="$OUT/results.jsonl"
: >"$results"
for path in ${PATHS:-mesh sfu}; do
  url_var="URL_$path"; turn_var="TURN_$path"
  for imp in "${cells[@]}"; do
    for run in $(seq 1 "$REPEAT"); do
      name="$path-$imp-$run"
      # The relay on its own loopback address, in front of this stack's TURN.
      log="$OUT/$name.relay.log"
      python3 -u "$root/tests/impair/relay.py" --listen 127.0.0.2:0 --upstream "${!turn_var}" \
        --seed "$SEED" --down "${IMPAIR[$imp]}" >"$log" 2>&1 &
      relay_pid=$!
      until grep -q '^ready ' "$log"; do
        kill -0 "$relay_pid" 2>/dev/null || { echo "audio-quality: relay did not start" >&2; cat "$log" >&2; exit 1; }
        sleep 0.1
      done
      addr="$(sed -n 's/^ready //p' "$log")"
      echo "== $name (relay $addr: ${IMPAIR[$imp]:-none})"
      ok=1
      (cd "$here" && URL="${!url_var}" RELAY="$addr" SPEECH_WAV="$OUT/speech.wav" SILENCE_WAV="$OUT/silence.wav" \
        NAME="$name" CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}" timeout 300 node run.mjs) || ok=0
      kill "$relay_pid" 2>/dev/null || true
      wait "$relay_pid" 2>/dev/null || true
      relay_stats="$(sed -n 's/^stats //p' "$log")"
      echo "   relay: ${relay_stats:-?}"
      if [ "$ok" = 1 ]; then
        "$VENV/bin/python" "$here/audio.py" score "$OUT" "$name" "$path" "$imp" "$OUT/speech.wav" | tee -a "$results"
      else
        echo "{\"path\": \"$path\", \"impairment\": \"$imp\", \"error\": \"run failed\"}" | tee -a "$results"
      fi
    done
  done
done

echo
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cols = ["path", "impairment", "pesq_wb", "concealed_pct", "inserted_pct", "removed_pct", "jitter_buffer_ms", "mouth_to_ear_ms", "loss_seen_pct", "codec"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for r in rows:
    print("| " + " | ".join(str(r.get(c, r.get("error", "")) if c not in ("path", "impairment") else r[c]) for c in cols) + " |")
print()
for r in rows:
    print(f"concealed {r['path']} {r['impairment']} {r.get('concealed_pct', 'nan')}")
for r in rows:
    print(f"mos {r['path']} {r['impairment']} {r.get('pesq_wb', 'nan')}")
EOF
