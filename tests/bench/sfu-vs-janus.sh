#!/usr/bin/env bash
# Group-call benchmark: the same synthetic WebRTC participants
# (tincan-sfu-load, webrtc-rs) in one room on Tincan's SFU (tincan-local
# with its embedded media node) and on Janus (VideoRoom as an SFU, and
# AudioBridge, which mixes), one fresh server per run.
#
# Each participant publishes Opus at 20 ms (tagged with its id and send
# time); SPEAKERS of them speak, the rest send silence. On Tincan each one
# receives the node's slots (the loudest speakers but itself); on VideoRoom
# each one subscribes to the speakers but itself (the tool picks them:
# VideoRoom has no speaker selection); on AudioBridge each one receives the
# mix. Printed per system and room size: loss, one-way latency through the
# server (p50/p99; none for the mix), server CPU per forwarded packet, per
# published packet (the unit in which a mixer compares fairly) and in all
# (from /proc/PID/stat, measurement window only), server RSS and downlink
# per participant, mismatches between Tincan's active-speakers events and
# the packets in the slots; then the Tincan/Janus ratios. Manual, not part of the test suite.
#
#   bash tests/bench/sfu-vs-janus.sh                      # 10, 50, 100 participants, 3 speaking
#   SMOKE=1 bash tests/bench/sfu-vs-janus.sh              # 4 participants, 3 s, Janus only: checks the tool
#   PARTICIPANTS="10 20" SYSTEMS="janus-videoroom" bash tests/bench/sfu-vs-janus.sh
#
# Runs in its own network namespace (unshare -n, so root): loopback, plus
# 127.0.0.2 on a veth, because Janus gathers no candidates on `lo` and
# ignores loopback peers; participants talking to Janus bind 127.0.0.2.
# Installs Janus (Debian package `janus`) when missing.
#
# Env: PARTICIPANTS (list, "10 50 100"), SPEAKERS (3), MUTED (the last
# MUTED participants are muted, 0; 1 in the smoke run), DURATION (s of
# measurement, 20), WARMUP (s, 3), SYSTEMS ("direct tincan janus-videoroom
# janus-audiobridge"; `direct`: no server, each participant sends straight
# to the next, the latency floor of the tool itself), MESH_MAX
# (TINCAN_MESH_MAX for tincan-local, 2), PROFILE (release|dev, for our binaries), TINCAN_LOCAL_BIN / LOAD_BIN (use
# these binaries instead of building), RESULTS (also append the raw result
# lines, JSON, to this file), SMOKE, CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

SMOKE=${SMOKE:-}
if [ -n "$SMOKE" ]; then
  PARTICIPANTS=${PARTICIPANTS:-4}
  SPEAKERS=${SPEAKERS:-2}
  MUTED=${MUTED:-1}
  DURATION=${DURATION:-3}
  WARMUP=${WARMUP:-1}
  SYSTEMS=${SYSTEMS:-"direct janus-videoroom janus-audiobridge"}
fi
PARTICIPANTS=${PARTICIPANTS:-"10 50 100"}
SPEAKERS=${SPEAKERS:-3}
MUTED=${MUTED:-0}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
SYSTEMS=${SYSTEMS:-"direct tincan janus-videoroom janus-audiobridge"}
MESH_MAX=${MESH_MAX:-2}
PROFILE=${PROFILE:-release}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/tincan-target}
export PARTICIPANTS SPEAKERS MUTED DURATION WARMUP SYSTEMS MESH_MAX PROFILE SMOKE

# Outside the namespace: install and build (both need the network).
if [ -z "${SFU_BENCH_IN_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "sfu-vs-janus: needs root (unshare -n, veth)" >&2; exit 1; }
  for tool in unshare ip curl python3; do
    command -v "$tool" >/dev/null || { echo "sfu-vs-janus: missing $tool" >&2; exit 1; }
  done
  case " $SYSTEMS " in *" janus-"*)
    if ! command -v janus >/dev/null; then
      echo "sfu-vs-janus: apt-get install janus"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q janus >/dev/null
    fi
  esac
  dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  if [ -z "${LOAD_BIN:-}" ]; then
    cargo build "${flag[@]}" -q -p tincan-sfu-load
    LOAD_BIN="$CARGO_TARGET_DIR/$dir/tincan-sfu-load"
  fi
  case " $SYSTEMS " in *" tincan "*)
    if [ -z "${TINCAN_LOCAL_BIN:-}" ]; then
      cargo build "${flag[@]}" -q -p tincan-local
      TINCAN_LOCAL_BIN="$CARGO_TARGET_DIR/$dir/tincan-local"
    fi
  esac
  export LOAD_BIN TINCAN_LOCAL_BIN="${TINCAN_LOCAL_BIN:-}"
  exec env SFU_BENCH_IN_NETNS=1 unshare -n bash "$0" "$@"
fi

# Inside: loopback up, and 127.0.0.2 on a veth for Janus.
ip link set lo up
ip link add sfub0 type veth peer name sfub1
ip addr add 127.0.0.2/32 dev sfub0
ip link set sfub0 up
ip link set sfub1 up
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

wait_http() { # URL [body]: until it answers 2xx
  for _ in $(seq 150); do
    if [ -n "${2:-}" ]; then
      curl -sf -o /dev/null -X POST -d "$2" "$1" && return 0
    else
      curl -sf -o /dev/null "$1" && return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "server died; log:" >&2; tail -20 "$work/server.log" >&2; return 1; }
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

janus_config() {
  local cfg=$work/janus
  mkdir -p "$cfg"
  local lib=/usr/lib/x86_64-linux-gnu/janus
  [ -d "$lib" ] || lib=$(dirname "$(dirname "$(find /usr/lib -name libjanus_videoroom.so -print -quit)")")
  cat >"$cfg/janus.jcfg" <<EOF
general: {
	configs_folder = "$cfg"
	plugins_folder = "$lib/plugins"
	transports_folder = "$lib/transports"
	events_folder = "$lib/events"
	loggers_folder = "$lib/loggers"
	debug_level = 2
	session_timeout = 120
}
media: {
	rtp_port_range = "20000-40000"
}
nat: {
	nice_debug = false
}
plugins: {
	disable = "libjanus_duktape.so,libjanus_lua.so,libjanus_echotest.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
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
	port = 8088
	interface = "lo"
	https = false
}
admin: {
	admin_http = false
}
EOF
  printf 'general: {\n}\n' >"$cfg/janus.plugin.videoroom.jcfg"
  printf 'general: {\n}\n' >"$cfg/janus.plugin.audiobridge.jcfg"
}

start_janus() {
  janus -C "$work/janus/janus.jcfg" -F "$work/janus" -i 127.0.0.2 >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_http http://127.0.0.1:8088/janus '{"janus":"info","transaction":"ready"}'
}

start_tincan() { # N
  local n=$1
  rm -rf "$work/tincan-data"
  TINCAN_ADDR=127.0.0.1:8080 TINCAN_MANAGEMENT_ADDR=127.0.0.1:8081 TINCAN_TURN_ADDR=127.0.0.1:3478 \
    TINCAN_DATA_DIR="$work/tincan-data" TINCAN_MESH_MAX="$MESH_MAX" TINCAN_ROOM_MAX=$((n + 8)) \
    TINCAN_SFU_ROOM_MAX=$((n + 8)) TINCAN_REGISTRATIONS_PER_ADDR=0 TINCAN_LOGIN_FAILURES_PER_ADDR=0 \
    RUST_LOG=warn "$TINCAN_LOCAL_BIN" >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_http http://127.0.0.1:8080/healthz
}

janus_config
: >"$work/results"
failed=0
for n in $PARTICIPANTS; do
  for system in $SYSTEMS; do
    case $system in
      tincan) start_tincan "$n"; url=http://127.0.0.1:8080; bind=127.0.0.1 ;;
      janus-*) start_janus; url=http://127.0.0.1:8088/janus; bind=127.0.0.2 ;;
      direct) url=http://127.0.0.1:1; bind=127.0.0.1 ;;
      *) echo "unknown system $system" >&2; exit 1 ;;
    esac
    echo "sfu-vs-janus: $system, $n participants, $SPEAKERS speaking, ${DURATION} s" >&2
    if line=$(timeout $((DURATION + WARMUP + 240)) "$LOAD_BIN" --system "$system" --url "$url" \
        --participants "$n" --speakers "$SPEAKERS" --muted "$MUTED" --duration "$DURATION" --warmup "$WARMUP" \
        --room "bench$n" --bind-ip "$bind" ${server_pid:+--server-pid "$server_pid"} 2>"$work/load.log" | grep '^result '); then
      echo "${line#result }" >>"$work/results"
    else
      echo "sfu-vs-janus: $system with $n participants failed:" >&2
      tail -5 "$work/load.log" >&2
      failed=1
    fi
    stop_server
  done
done
[ -n "${RESULTS:-}" ] && cat "$work/results" >>"$RESULTS"

python3 - "$work/results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)
print(f"{'system':<18} {'N':>4} {'joined':>6} {'sent pkts':>9} {'recv pkts':>9} {'loss %':>7} {'p50 ms':>7} {'p99 ms':>7} "
      f"{'CPU %':>6} {'CPU us/pkt':>10} {'us/sent':>7} {'RSS KiB/p':>9} {'down kbit/s/p':>13} {'mismatch':>8} {'tool CPU %':>10}")
for r in rows:
    print(f"{r['system']:<18} {r['participants']:>4} {r['joined']:>6} {r['sent_packets']:>9} {r['received_packets']:>9} "
          f"{f(r['loss_pct'], '{:.3f}'):>7} {f(r.get('latency_ms_p50')):>7} {f(r.get('latency_ms_p99')):>7} "
          f"{f(r.get('server_cpu_pct'), '{:.1f}'):>6} {f(r.get('server_cpu_us_per_packet')):>10} {f(r.get('server_cpu_us_per_sent_packet')):>7} "
          f"{f(r.get('server_rss_kib_per_participant'), '{:.0f}'):>9} {f(r.get('downlink_kbps_per_participant'), '{:.1f}'):>13} "
          f"{r['mismatches']:>8} {f(r.get('tool_cpu_pct'), '{:.1f}'):>10}")
by = {(r['system'], r['participants']): r for r in rows}
ratios = []
for (system, n), t in sorted(by.items()):
    if system != "tincan":
        continue
    for peer in ("janus-videoroom", "janus-audiobridge"):
        j = by.get((peer, n))
        if not j:
            continue
        def ratio(key):
            a, b = t.get(key), j.get(key)
            return "-" if not a or not b else f"{a / b:.2f}"
        ratios.append(f"tincan/{peer:<17} {n:>4}   CPU/pkt {ratio('server_cpu_us_per_packet'):>5}   "
                      f"CPU/sent {ratio('server_cpu_us_per_sent_packet'):>5}   "
                      f"CPU {ratio('server_cpu_pct'):>5}   RSS/p {ratio('server_rss_kib_per_participant'):>5}   "
                      f"p50 {ratio('latency_ms_p50'):>5}   p99 {ratio('latency_ms_p99'):>5}   "
                      f"downlink/p {ratio('downlink_kbps_per_participant'):>5}")
for (system, n), d in sorted(by.items()):
    if system != "direct" or d.get("latency_ms_p50") is None:
        continue
    added = [f"{s} {r['latency_ms_p50'] - d['latency_ms_p50']:.2f}" for (s, m), r in sorted(by.items())
             if m == n and s != "direct" and r.get("latency_ms_p50") is not None]
    if added:
        print(f"added p50 latency over direct, N={n} (ms): " + ", ".join(added))
if ratios:
    print("\nratios (Tincan / Janus; < 1: Tincan uses less)")
    print("\n".join(ratios))
EOF

if [ -n "$SMOKE" ]; then
  # The smoke run checks the tool: everyone in, packets flowing, nothing
  # attributed to the wrong slot.
  python3 - "$work/results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bad = [r for r in rows if r["joined"] != r["participants"] or r["received_packets"] == 0
       or r["receivers_with_nothing"] or r["mismatches"] or r["own_packets_received"]
       or r.get("muted_packets_received")]
sys.exit(f"smoke: bad results: {bad}" if bad or not rows else 0)
EOF
fi
exit "$failed"
