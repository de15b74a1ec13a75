#!/usr/bin/env bash
# TURN relay benchmark, side by side in one run: the same turnutils_uclient
# load against coturn and against our media node (tincan-media-node), both
# on loopback with TURN REST API credentials, relaying to one turnutils_peer.
#
# Prints, per server and client count: messages sent/received, relayed
# packets/s, loss, average RTT, jitter, server CPU seconds (from
# /proc/PID/stat, during the load only), CPU microseconds per relayed packet,
# and the ours/coturn ratios. Manual, not part of the test suite.
#
#   bash tests/bench/turn-vs-coturn.sh                 # 100 and 500 clients
#   CLIENTS="50 100" MESSAGES=200 bash tests/bench/turn-vs-coturn.sh
#   STEPS="100:20:150 100:5:600 200:2:1500" bash tests/bench/turn-vs-coturn.sh
#
# Env: CLIENTS (list), MESSAGES per client (100), SIZE bytes (160: 20 ms of
# Opus at ~64 kbit/s), INTERVAL ms between a client's packets (20),
# STEPS (a list of CLIENTS:INTERVAL:MESSAGES, run in order instead of
# CLIENTS: a load ramp for the saturation point), TRANSPORT (udp|tcp),
# PROFILE (release|dev, the build of our node), NODE_BIN (use this binary
# instead of building), UCLIENT_TIMEOUT (s per load run, 120: a client
# whose port collides with a live allocation of an earlier step retries its
# Allocate forever), SERVERS (which to load, default "coturn ours"),
# NODE_ENV (extra VAR=value settings for our node, space-separated, e.g.
# "TINCAN_TURN_UDP_BUFFER=0" to compare settings), RESULTS (also append the
# raw rows to this file, for tests/bench/report), CARGO_TARGET_DIR.
#
# Where packets are lost: "srv drops" counts datagrams the kernel dropped on
# the server's own UDP sockets (full receive buffers, from `ss -uamp`), and
# "rcvbuf errs" the host's UDP receive-buffer errors (/proc/net/snmp: the
# server's, the load client's and the echo peer's sockets together).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLIENTS=${CLIENTS:-"100 500"}
MESSAGES=${MESSAGES:-100}
SIZE=${SIZE:-160}
INTERVAL=${INTERVAL:-20}
TRANSPORT=${TRANSPORT:-udp}
SERVERS=${SERVERS:-"coturn ours"}
PROFILE=${PROFILE:-release}
# Our node requires a secret of at least 32 bytes.
SECRET="bench-secret-$$-$(openssl rand -hex 16)"
REALM=tincan
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/tincan-target}

for tool in turnserver turnutils_uclient turnutils_peer python3 openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run bash tests/setup.sh" >&2; exit 1; }
done

if [ -z "${NODE_BIN:-}" ]; then
  if [ "$PROFILE" = release ]; then
    cargo build --release -q -p tincan-media-node
  else
    cargo build -q -p tincan-media-node
  fi
  dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
  NODE_BIN="$CARGO_TARGET_DIR/$dir/tincan-media-node"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  # Our node drains on the first SIGTERM (TINCAN_DRAIN_GRACE_SECS, 0 here)
  # and stops at once on a second; anything still there after 3 s is killed,
  # so the bench never waits on a drain.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 30); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  # A port free on both UDP and TCP.
  python3 - <<'EOF'
import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port)); print(port); break
    except OSError:
        pass
    finally:
        t.close(); u.close()
EOF
}

cpu_secs() { # utime+stime of a process and its threads, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

socket_drops() { # datagrams dropped on the UDP sockets process $1 holds open
  ss -uampn 2>/dev/null | awk -v owner="pid=$1," '
    /^[A-Z]/ { mine = index($0, owner) > 0; next }
    mine && match($0, /,d[0-9]+\)/) { d += substr($0, RSTART + 2, RLENGTH - 3) }
    END { print d + 0 }'
}

rcvbuf_errors() { # the host's UDP receive-buffer errors so far
  awk '/^Udp:/ { if (n++) print $6 }' /proc/net/snmp
}

wait_udp() { # until something answers a STUN binding on 127.0.0.1:$1
  python3 - "$1" <<'EOF'
import socket, sys, time, os
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
req = bytes([0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]) + os.urandom(12)
for _ in range(100):
    s.sendto(req, ("127.0.0.1", port))
    try:
        s.recvfrom(2048); sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("no STUN answer on port %d" % port)
EOF
}

peer_port=$(free_port)
turnutils_peer -L 127.0.0.1 -p "$peer_port" >/dev/null 2>&1 &
pids+=($!)

# Fresh servers for every step: turnutils_uclient leaves its allocations
# alive when it exits, and a later step's client that gets the same source
# port would find that allocation (437) and retry forever.
start_servers() {
  coturn_port=$(free_port)
  turnserver -n --listening-ip=127.0.0.1 --listening-port="$coturn_port" \
    --relay-ip=127.0.0.1 --min-port=40000 --max-port=44999 \
    --use-auth-secret --static-auth-secret="$SECRET" --realm="$REALM" \
    --allow-loopback-peers --no-cli --no-tls --no-dtls --no-multicast-peers \
    --log-file=/dev/null --no-stdout-log >/dev/null 2>&1 &
  coturn_pid=$!
  pids+=($coturn_pid)

  ours_port=$(free_port)
  metrics_port=$(free_port)
  # Like coturn's --allow-loopback-peers: the echo peer is on loopback. All
  # clients share one address, so the per-address caps are off; no drain
  # grace, so the SIGTERM at the end does not wait for allocations to run out.
  TINCAN_TURN_ADDR="127.0.0.1:$ours_port" TINCAN_TURN_SECRET="$SECRET" TINCAN_TURN_REALM="$REALM" \
    TINCAN_RELAY_PORT_MIN=45000 TINCAN_RELAY_PORT_MAX=49999 TINCAN_TURN_USER_QUOTA=0 \
    TINCAN_TURN_IP_QUOTA=0 TINCAN_TURN_TCP_PER_IP=0 TINCAN_TURN_ALLOWED_PEERS=127.0.0.0/8 \
    TINCAN_DRAIN_GRACE_SECS=0 TINCAN_SFU_DISABLED=true \
    TINCAN_METRICS_ADDR="127.0.0.1:$metrics_port" RUST_LOG=warn \
    env ${NODE_ENV:-} "$NODE_BIN" >>"$work/ours.log" 2>&1 &
  ours_pid=$!
  pids+=($ours_pid)

  wait_udp "$coturn_port"
  wait_udp "$ours_port"
}

stop_servers() { # SIGTERM, then SIGKILL after 3 s
  kill "$coturn_pid" "$ours_pid" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$coturn_pid" 2>/dev/null || kill -0 "$ours_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$coturn_pid" "$ours_pid" 2>/dev/null || true
  wait "$coturn_pid" "$ours_pid" 2>/dev/null || true
}

user="$(( $(date +%s) + 3600 )):bench"
pass=$(printf %s "$user" | openssl dgst -sha1 -hmac "$SECRET" -binary | base64)
tflag=(); [ "$TRANSPORT" = tcp ] && tflag=(-t)

# run NAME PORT PID CLIENTS INTERVAL MESSAGES -> one result line in $work/results
run() {
  local name=$1 port=$2 pid=$3 n=$4 interval=$5 messages=$6 out="$work/$1-$4-$5.log"
  local cpu0 cpu1 t0 t1 drops0 drops1 errs0 errs1
  drops0=$(socket_drops "$pid"); errs0=$(rcvbuf_errors)
  cpu0=$(cpu_secs "$pid"); t0=$(date +%s.%N)
  timeout "${UCLIENT_TIMEOUT:-120}" turnutils_uclient "${tflag[@]}" -c -m "$n" -n "$messages" -l "$SIZE" -z "$interval" \
    -e 127.0.0.1 -r "$peer_port" -p "$port" -u "$user" -w "$pass" 127.0.0.1 >"$out" 2>&1 || true
  t1=$(date +%s.%N); cpu1=$(cpu_secs "$pid")
  drops1=$(socket_drops "$pid"); errs1=$(rcvbuf_errors)
  python3 - "$name" "$n" "$out" "$cpu0" "$cpu1" "$t0" "$t1" "$interval" \
    "$((drops1 > drops0 ? drops1 - drops0 : 0))" "$((errs1 - errs0))" >>"$work/results" <<'EOF'
import re, sys
name, n, path, cpu0, cpu1, t0, t1, interval, drops, errs = sys.argv[1:]
text = open(path, errors="replace").read()
def last(pattern, default=float("nan")):
    found = re.findall(pattern, text)
    return float(found[-1]) if found else default
sent = last(r"tot_send_msgs=(\d+)", 0); recv = last(r"tot_recv_msgs=(\d+)", 0)
lost = last(r"Total lost packets (\d+)")
rtt = last(r"Average round trip delay ([\d.]+) ms")
jitter = last(r"Average jitter ([\d.]+) ms")
secs = last(r"Total transmit time is (\d+)")
wall = float(t1) - float(t0)
cpu = float(cpu1) - float(cpu0)
# Each echoed message crosses the relay twice: client->peer and peer->client.
relayed = sent + recv
pps = relayed / secs if secs and secs == secs and secs > 0 else relayed / wall
us_per = cpu / relayed * 1e6 if relayed else float("nan")
loss = 100.0 * (sent - recv) / sent if sent else float("nan")
print(f"{name} {n} {int(sent)} {int(recv)} {pps:.0f} {loss:.2f} {lost:.0f} {rtt:.2f} {jitter:.2f} {cpu:.2f} {us_per:.1f} {wall:.1f} {interval} {drops} {errs}")
EOF
}

STEPS=${STEPS:-$(for n in $CLIENTS; do printf '%s:%s:%s ' "$n" "$INTERVAL" "$MESSAGES"; done)}
first=1
for step in $STEPS; do
  IFS=: read -r n interval messages <<<"$step"
  [ "$first" = 1 ] || stop_servers
  first=0
  start_servers
  echo "turn-vs-coturn: $n clients, a packet every $interval ms, $messages each" >&2
  for server in $SERVERS; do
    case $server in
      coturn) run coturn "$coturn_port" "$coturn_pid" "$n" "$interval" "$messages" ;;
      ours) run ours "$ours_port" "$ours_pid" "$n" "$interval" "$messages" ;;
      *) echo "unknown server $server (coturn, ours)" >&2; exit 1 ;;
    esac
  done
done
[ -n "${RESULTS:-}" ] && cat "$work/results" >>"$RESULTS"

python3 - "$work/results" "$TRANSPORT" "$SIZE" "$MESSAGES" "$INTERVAL" <<'EOF'
import sys
path, transport, size, msgs, interval = sys.argv[1:]
rows = [l.split() for l in open(path) if l.strip()]
print(f"\nTURN over {transport}, {size}-byte packets, loopback (gap ms: between one client's packets)\n")
head = ["server", "clients", "sent", "recv", "pkt/s", "loss%", "lost", "rtt ms", "jitter ms", "cpu s", "cpu us/pkt", "wall s", "gap ms", "srv drops", "rcvbuf errs"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
by = {(r[0], r[1], r[12]): r for r in rows}
for n, gap in sorted({(r[1], r[12]) for r in rows}, key=lambda k: (int(k[0]), -float(k[1]))):
    o, c = by.get(("ours", n, gap)), by.get(("coturn", n, gap))
    if not (o and c):
        continue
    def ratio(i):
        a, b = float(o[i]), float(c[i])
        return f"{a / b:.2f}" if b else "n/a"
    print(f"ours/coturn at {n} clients every {gap} ms: pkt/s x{ratio(4)}, cpu s x{ratio(9)}, cpu per packet x{ratio(10)}, "
          f"loss {o[5]}% vs {c[5]}%")
EOF
echo
echo "our node's counters after the last step:"
python3 - "$metrics_port" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(("tincan_turn_allocations_total", "tincan_turn_packets_total", "tincan_turn_auth_failures_total")):
        print("  " + line)
EOF
