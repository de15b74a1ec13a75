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
# in user space), `sfu` (TINCAN_MESH_MAX=1: the two pages on the embedded
# SFU, the listener reaching it through TURN) and `janus` (the same two
# Chromiums, speech file and recording, talking through Janus VideoRoom,
# Debian's `janus` 1.1.2: the speaker publishes, the listener subscribes,
# with a small HTTP long-poll client of ours, audio-quality/janus.mjs; both
# forced through the embedded TURN server of a Tincan stack like the `sfu`
# path, so the listener's leg to Janus crosses the same relay with the same
# seed. Janus runs as sfu-vs-janus.sh runs it: HTTP on loopback, ICE on
# 127.0.0.2 on a veth, since it gathers no candidates on `lo`; the TURN
# server of its pages listens and relays on 127.0.0.2 too). The speaker
# offers RED first, as the project's client does; Janus 1.1.2's VideoRoom
# answers with Opus alone (in-band FEC on, DTX off): no RED on that path.
# Impairments apply to what the listener receives (the relay's "down"
# direction on the listener's TURN leg), seeded; cap24 to what the speaker
# sends (the "up" direction on the speaker's leg), so the sender has to
# adapt.
#
# QUICK=1: {mesh, sfu, janus} x {clean, loss20}. Otherwise also loss5,
# loss10, burst10 (10 % in bursts of mean 3), jitter (80 +- 30 ms,
# reordering) and cap24 (24 kbit/s counting RTP, SRTP and TURN framing, a
# 1 s queue so DTLS flights get through; on the speaker's uplink). Ends with the table (markdown), one line per row `mos PATH
# IMPAIRMENT SCORE`, and the SFU/Janus ratios per impairment; draws
# OUT/audio-quality.png (PESQ-WB against loss, one line per path;
# matplotlib in the venv). DOCS=1 also copies the chart to
# docs/benchmarks/audio-quality.png.
#
# Env: PATHS ("mesh sfu janus"), CELLS (a subset of the impairments above, e.g.
# "clean loss20"), TINCAN_BIN_DIR (a built tincan-local; default: tests/build), SEED (7),
# REPEAT (1: runs per cell, each its own line), RECORD_SECS (26), OUT
# (tests/output/audio-quality), CHROMIUM_PATH, DOCS. Needs root (unshare -n,
# a veth for Janus); installs espeak-ng and janus (apt) and numpy, scipy,
# pesq, matplotlib in ~/.cache/tincan-audio-venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/bench/audio-quality"
VENV="$HOME/.cache/tincan-audio-venv"
export SEED="${SEED:-7}" REPEAT="${REPEAT:-1}" RECORD_SECS="${RECORD_SECS:-26}" QUICK="${QUICK:-0}"
export OUT="${OUT:-$root/tests/output/audio-quality}" PATHS="${PATHS:-mesh sfu janus}" DOCS="${DOCS:-0}"

if [ -z "${AQ_IN_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "audio-quality: needs root (unshare -n)" >&2; exit 1; }
  command -v espeak-ng >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng >/dev/null
  case " $PATHS " in *" janus "*)
    command -v janus >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q janus >/dev/null
  esac
  if ! "$VENV/bin/python" -c 'import numpy, scipy, pesq, matplotlib' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check numpy scipy pesq 'matplotlib==3.10.*'
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

# start NAME MESH_MAX [TURN_IP]: sets URL_NAME and TURN_NAME
start_stack() {
  local name="$1" port turn turn_ip="${3:-127.0.0.1}"
  port="$(free_port)"; turn="$(free_port)"
  mkdir -p "$tmp/$name"
  TINCAN_ADDR="127.0.0.1:$port" TINCAN_MANAGEMENT_ADDR="127.0.0.1:$(free_port)" \
  TINCAN_DATA_DIR="$tmp/$name" TINCAN_JWT_SECRET="$secret" TINCAN_MESH_MAX="$2" \
  TINCAN_REGISTRATIONS_PER_ADDR=0 TINCAN_TURN_ADDR="$turn_ip:$turn" TINCAN_WEB_DIR="$root/web" \
  RUST_LOG=warn "$bin" >"$OUT/tincan-local-$name.log" 2>&1 &
  pids+=("$!")
  local deadline=$((SECONDS + 90))
  until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] && kill -0 "${pids[-1]}" 2>/dev/null \
      || { echo "audio-quality: tincan-local ($name) did not start" >&2; tail -n 20 "$OUT/tincan-local-$name.log" >&2; exit 1; }
    sleep 0.2
  done
  printf -v "URL_$name" '%s' "http://127.0.0.1:$port"
  printf -v "TURN_$name" '%s' "$turn_ip:$turn"
}
start_stack mesh 4
start_stack sfu 1

# Janus (the `janus` path): as tests/bench/sfu-vs-janus.sh starts it.
start_janus() {
  ip link add aqj0 type veth peer name aqj1
  ip addr add 127.0.0.2/32 dev aqj0
  ip link set aqj0 up
  ip link set aqj1 up
  local cfg="$tmp/janus" lib=/usr/lib/x86_64-linux-gnu/janus port
  [ -d "$lib" ] || lib=$(dirname "$(dirname "$(find /usr/lib -name libjanus_videoroom.so -print -quit)")")
  port="$(free_port)"
  mkdir -p "$cfg"
  cat >"$cfg/janus.jcfg" <<EOF
general: {
	configs_folder = "$cfg"
	plugins_folder = "$lib/plugins"
	transports_folder = "$lib/transports"
	events_folder = "$lib/events"
	loggers_folder = "$lib/loggers"
	debug_level = 3
	session_timeout = 120
}
media: {
	rtp_port_range = "20000-40000"
}
plugins: {
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_lua.so,libjanus_echotest.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}
transports: {
	disable = "libjanus_websockets.so,libjanus_pfunix.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_rabbitmq.so"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
}
EOF
  cat >"$cfg/janus.transport.http.jcfg" <<EOF
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = $port
	interface = "lo"
	https = false
}
admin: {
	admin_http = false
}
EOF
  printf 'general: {\n}\n' >"$cfg/janus.plugin.videoroom.jcfg"
  janus -C "$cfg/janus.jcfg" -F "$cfg" -i 127.0.0.2 >"$OUT/janus.log" 2>&1 &
  pids+=("$!")
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null -X POST -d '{"janus":"info","transaction":"ready"}' "http://127.0.0.1:$port/janus" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] && kill -0 "${pids[-1]}" 2>/dev/null \
      || { echo "audio-quality: janus did not start" >&2; tail -n 20 "$OUT/janus.log" >&2; exit 1; }
    sleep 0.2
  done
  JANUS_URL="http://127.0.0.1:$port/janus"
  # The Janus pages' TURN server: a stack of its own (only its TURN server
  # and HTTP API serve), on 127.0.0.2, so its relayed addresses are not on
  # `lo` (Janus's ICE does not reach peers there).
  start_stack janus 1 127.0.0.2
}
JANUS_URL=
case " $PATHS " in *" janus "*) start_janus ;; esac

declare -A IMPAIR=(
  [clean]="" [loss5]="loss=0.05" [loss10]="loss=0.1" [loss20]="loss=0.2"
  [burst10]="loss=0.1,burst=3" [jitter]="delay=80,jitter=30,reorder=1" [cap24]="rate=24,queue=1000"
)
# Cells impaired on the speaker's uplink rather than the listener's downlink.
declare -A ON_UPLINK=([cap24]=1)
if [ -n "${CELLS:-}" ]; then
  read -ra cells <<<"$CELLS"
elif [ "$QUICK" = 1 ]; then
  cells=(clean loss20)
else
  cells=(clean loss5 loss10 loss20 burst10 jitter cap24)
fi

results="$OUT/results.jsonl"
: >"$results"
for path in $PATHS; do
  url_var="URL_$path"; turn_var="TURN_$path"
  janus_url=; [ "$path" = janus ] && janus_url="$JANUS_URL"
  for imp in "${cells[@]}"; do
    for run in $(seq 1 "$REPEAT"); do
      name="$path-$imp-$run"
      # The relay on its own loopback address, in front of this stack's TURN.
      log="$OUT/$name.relay.log"
      direction=--down; relay_role=listener
      [ -n "${ON_UPLINK[$imp]:-}" ] && { direction=--up; relay_role=speaker; }
      python3 -u "$root/tests/impair/relay.py" --listen 127.0.0.2:0 --upstream "${!turn_var}" \
        --seed "$SEED" "$direction" "${IMPAIR[$imp]}" >"$log" 2>&1 &
      relay_pid=$!
      until grep -q '^ready ' "$log"; do
        kill -0 "$relay_pid" 2>/dev/null || { echo "audio-quality: relay did not start" >&2; cat "$log" >&2; exit 1; }
        sleep 0.1
      done
      addr="$(sed -n 's/^ready //p' "$log")"
      echo "== $name (relay $addr, $relay_role ${direction#--}: ${IMPAIR[$imp]:-none})"
      ok=1
      (cd "$here" && URL="${!url_var}" RELAY="$addr" RELAY_ROLE="$relay_role" JANUS_URL="$janus_url" SPEECH_WAV="$OUT/speech.wav" SILENCE_WAV="$OUT/silence.wav" \
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
label="$(date -u +%Y-%m-%d), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), seed $SEED"
"$VENV/bin/python" "$here/report.py" "$results" "$OUT/audio-quality.png" "$label"
if [ "$DOCS" = 1 ]; then
  cp "$OUT/audio-quality.png" "$root/docs/benchmarks/audio-quality.png"
  echo "chart copied to docs/benchmarks/audio-quality.png"
fi
