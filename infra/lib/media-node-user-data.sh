#!/bin/bash
# Installs tincan-media-node as a systemd service, ships its log and this
# script's output to CloudWatch Logs, publishes its load to CloudWatch every
# minute, and drains it when Auto Scaling terminates the instance
# (lifecycle hook tincan-drain). Session Manager works out of the box (the
# SSM agent is part of Amazon Linux 2023; the role allows it).
#
# It fails loudly: a step that goes wrong says why on the console
# (EC2 > Instance > Monitor > Get system log, or
# `aws ec2 get-console-output --latest`), lines starting
# "tincan-media-node setup:", and signals FAILURE to CloudFormation, which
# rolls the stack back. SUCCESS is signalled only once the node answers a
# STUN binding on its public address, over UDP and TCP. The same lines reach
# the log group /tincan/<stack>/media-node (stream <instance>/boot) when the
# log agent could start.
set -Eeuo pipefail
REGION='${AWS::Region}'
STACK_NAME='${AWS::StackName}'
ASG_NAME='${AWS::StackName}-media-nodes'
ARTIFACT='s3://${MediaNodeArtifactBucket}/${MediaNodeArtifactKey}'
# The binary's SHA-256 (MediaNodeArtifactSha256): checked before it ever runs.
ARTIFACT_SHA256='${MediaNodeArtifactSha256}'
TURN_PORT=3478
TLS_PORT=5349
TLS_NAME=
LIB=/usr/local/lib/tincan
BIN=/usr/local/bin/tincan-media-node
IMDS=$LIB/imds
STATE=/var/lib/tincan
TLS_DIR=/etc/tincan-tls
SERVICE_GROUP=tincan
LOG_DIR=/var/log/tincan
FAIL_FLUSH_SECS=15
INSTANCE_ID=unknown
STUN_WAIT_SECS=120
# /metrics and /healthz: the load balancer's health check asks /healthz from
# inside the VPC (the security group opens this port to private addresses only).
METRICS_PORT=9100
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics

# --------------------------------------------------------------- steps
say() {
  echo "tincan-media-node setup: $*" >&2
  { echo "tincan-media-node setup: $*" >/dev/console; } 2>/dev/null || true
}

# signal SUCCESS|FAILURE: the group's CreationPolicy counts these, and so
# does its UpdatePolicy while a stack update rolls the nodes (a FAILURE rolls
# the update back). Outside those CloudFormation refuses them, which is
# harmless.
signal() {
  aws cloudformation signal-resource --region "$REGION" --stack-name "$STACK_NAME" \
    --logical-resource-id MediaNodeGroup --unique-id "$INSTANCE_ID" --status "$1" >/dev/null 2>&1 || true
}

# fail REASON: say why, tell CloudFormation, give the log agent time to
# ship the reason, stop.
fail() {
  trap - ERR
  say "FAILED: $*"
  signal FAILURE
  sleep "$FAIL_FLUSH_SECS"
  exit 1
}

# on_error LINE COMMAND STATUS: any other failing step.
on_error() {
  fail "line $1: \"$2\" exited with status $3"
}

# fetch_binary: the node's binary from S3 to $BIN, only if its SHA-256 is
# MediaNodeArtifactSha256: a binary uploaded over the key, a truncated
# download or another build fails the boot (and with it the stack's create
# or update) before it runs.
fetch_binary() {
  local out sum
  out=$(aws s3 cp --no-progress --region "$REGION" "$ARTIFACT" "$BIN.download" 2>&1) \
    || fail "cannot download $ARTIFACT (check MediaNodeArtifactBucket and MediaNodeArtifactKey): $out"
  sum=$(sha256sum "$BIN.download" | cut -d' ' -f1)
  if [ "$sum" != "$ARTIFACT_SHA256" ]; then
    rm -f "$BIN.download"
    fail "$ARTIFACT has SHA-256 $sum, but MediaNodeArtifactSha256 is $ARTIFACT_SHA256: upload each build" \
      "under a key of its own and pass that key and its checksum (sha256sum FILE) together (docs/deploy.md, step 1)"
  fi
  mv -f "$BIN.download" "$BIN"
  chmod 0755 "$BIN"
}

# check_binary FILE: a Linux executable for this machine that starts.
check_binary() {
  local file=$1 machine elf built
  [ -s "$file" ] || fail "$ARTIFACT is empty"
  [ "$(od -An -tx1 -N4 "$file" | tr -d ' \n')" = 7f454c46 ] \
    || fail "$ARTIFACT is not a Linux executable (no ELF header): upload the tincan-media-node binary (docs/deploy.md, step 1)"
  machine=$(uname -m)
  elf=$(od -An -tu2 -j18 -N2 "$file" | tr -d ' \n')
  case "$elf" in
    183) built=aarch64 ;;
    62) built=x86_64 ;;
    *) built="ELF machine $elf" ;;
  esac
  if [ "$built" != "$machine" ]; then
    fail "$ARTIFACT is built for $built but this instance is $machine: build it with" \
      "cargo lambda build --release $([ "$machine" = aarch64 ] && echo --arm64 || echo --x86-64) -p tincan-media-node," \
      "or choose a MediaNodeInstanceType and MediaNodeImageId of the binary's architecture"
  fi
  "$file" --version >/dev/null 2>&1 \
    || fail "$ARTIFACT does not start on this instance: $("$file" --version 2>&1 | head -c 300 || true)"
}

# start_log_shipping: the CloudWatch agent sends the node's log and this
# script's output to the stack's log group. Without it the node still
# works, so a failure here is only reported.
start_log_shipping() {
  local out
  install -d -m 0755 "$LOG_DIR"
  cat > /etc/tincan/cloudwatch-agent.json <<'AGENT'
{
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          { "file_path": "/var/log/tincan/media-node.log", "log_group_name": "${MediaNodeLogGroup}",
            "log_stream_name": "{instance_id}/media-node" },
          { "file_path": "/var/log/cloud-init-output.log", "log_group_name": "${MediaNodeLogGroup}",
            "log_stream_name": "{instance_id}/boot" }
        ]
      }
    }
  }
}
AGENT
  cat > /etc/logrotate.d/tincan <<'ROTATE'
/var/log/tincan/*.log {
  daily
  maxsize 100M
  rotate 3
  copytruncate
  compress
  missingok
}
ROTATE
  if out=$(dnf install -y -q amazon-cloudwatch-agent 2>&1 \
    && /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
      -c file:/etc/tincan/cloudwatch-agent.json 2>&1); then
    say "shipping logs to ${MediaNodeLogGroup}"
  else
    say "WARNING: logs stay on this instance (/var/log/tincan), the CloudWatch agent did not start: $(echo "$out" | tail -3)"
  fi
}

# install_load_publisher: $LIB/publish-load, run every minute. It also
# keeps the node protected from scale-in while it carries calls (TURN
# allocations or SFU participants), so scale-in only ever picks an idle node
# and never cuts a call.
install_load_publisher() {
  install -d -m 0755 "$STATE"
  cat > "$LIB/publish-load" <<LOAD
#!/bin/bash
# The node's figures from its /metrics -> CloudWatch Tincan/MediaNode, one call:
#   Load                 tincan_node_load, TURN allocations plus SFU participants:
#                        the group's target tracking follows it, and scale-in
#                        protection follows whether it is above 0
#   TurnAllocations, SfuParticipants   its two parts
#   TurnAuthFailures, SfuPacketsForwarded, SfuPacketsDropped
#                        counter increases since the last run, for the alarms
#   CertificateDaysLeft  days until the TURN-over-TLS certificate expires (with TLS)
set -euo pipefail
metrics=\$(curl -sf '$METRICS_URL')
# gauge NAME: an unlabelled sample's value, empty if the node has none.
gauge() { echo "\$metrics" | awk -v name="\$1" '\$1 == name { print \$2 }'; }
# increase NAME: every sample of counter NAME added up, less what it was at the
# last run (the counters restart with the node).
increase() {
  local now last
  now=\$(echo "\$metrics" | awk -v name="\$1" '\$1 == name || index(\$1, name "{") == 1 { n += \$2 } END { printf "%d", n }')
  last=\$(cat "$STATE/\$1" 2>/dev/null || echo 0)
  echo "\$now" > "$STATE/\$1"
  echo \$(( now >= last ? now - last : now ))
}
load=\$(gauge tincan_node_load)
[ -n "\$load" ] || exit 0
item() { echo "MetricName=\$1,Unit=\$2,Value=\$3,Dimensions=[{Name=AutoScalingGroupName,Value=$ASG_NAME}]"; }
data=(
  "\$(item Load Count "\$load")"
  "\$(item TurnAllocations Count "\$(gauge tincan_turn_allocations)")"
  "\$(item SfuParticipants Count "\$(gauge tincan_sfu_participants)")"
  "\$(item TurnAuthFailures Count "\$(increase tincan_turn_auth_failures_total)")"
  "\$(item SfuPacketsForwarded Count "\$(increase tincan_sfu_packets_forwarded_total)")"
  "\$(item SfuPacketsDropped Count "\$(increase tincan_sfu_packets_dropped_total)")"
)
cert='$TLS_DIR/certificate.pem'
if [ -r "\$cert" ] && end=\$(openssl x509 -noout -enddate -in "\$cert" | cut -d= -f2) && [ -n "\$end" ]; then
  data+=("\$(item CertificateDaysLeft None \$(( (\$(date -d "\$end" +%s) - \$(date +%s)) / 86400 )))")
fi
aws cloudwatch put-metric-data --region '$REGION' --namespace Tincan/MediaNode --metric-data "\${!data[@]}"
# Scale-in protection follows whether the node carries calls.
want=\$([ "\$load" -gt 0 ] && echo protected || echo idle)
if [ "\$want" != "\$(cat '$STATE/protection' 2>/dev/null || true)" ]; then
  flag=\$([ "\$want" = protected ] && echo --protected-from-scale-in || echo --no-protected-from-scale-in)
  aws autoscaling set-instance-protection --region '$REGION' --auto-scaling-group-name '$ASG_NAME' \\
    --instance-ids "\$($IMDS meta-data/instance-id)" "\$flag"
  echo "\$want" > '$STATE/protection'
fi
LOAD
  chmod 0755 "$LIB/publish-load"
}

# install_tls_certificate: the certificate and key of TurnTlsDomain from the
# secret TurnTlsCertificateSecret, a JSON object {"certificate": "<PEM
# chain, leaf first>", "privateKey": "<PEM key>"}, readable by the service
# user and nobody else.
install_tls_certificate() {
  local secret out
  secret=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id '${TurnTlsCertificateSecret}' \
    --query SecretString --output text 2>&1) \
    || fail "cannot read the TLS certificate secret ${TurnTlsCertificateSecret}: $secret"
  install -d -m 0750 "$TLS_DIR"
  out=$(echo "$secret" | python3 -c '
import json, os, sys
try:
    value = json.load(sys.stdin)
    cert, key = value["certificate"], value["privateKey"]
except (ValueError, KeyError, TypeError):
    sys.exit("it is not a JSON object with \"certificate\" and \"privateKey\"")
if not isinstance(cert, str) or "BEGIN CERTIFICATE" not in cert:
    sys.exit("its \"certificate\" is not a PEM certificate chain")
if not isinstance(key, str) or "PRIVATE KEY" not in key:
    sys.exit("its \"privateKey\" is not a PEM private key")
os.umask(0o027)
for name, text in (("certificate.pem", cert), ("private-key.pem", key)):
    with open(os.path.join(sys.argv[1], name), "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
' "$TLS_DIR" 2>&1) || fail "the TLS certificate secret ${TurnTlsCertificateSecret}: $out"
  chgrp "$SERVICE_GROUP" "$TLS_DIR" "$TLS_DIR/certificate.pem" "$TLS_DIR/private-key.pem"
}

# public_ipv4: sets PUBLIC_IP to the instance's public address, or says
# why there is none.
public_ipv4() {
  PUBLIC_IP=$("$IMDS" meta-data/public-ipv4) && [[ "$PUBLIC_IP" =~ ^[0-9]+(\.[0-9]+){3}$ ]] \
    || fail "this instance has no public IPv4 address, and browsers must reach a media node directly:" \
      "SubnetIds must be public subnets (a route to an internet gateway), not private ones behind NAT"
}

# wait_for_stun IP: the node answers a STUN binding on IP:3478, UDP and TCP,
# within STUN_WAIT_SECS; with TURN over TLS also on its TLS port, through a
# TLS session that verifies the certificate for TLS_NAME. This goes out through the internet gateway and back,
# so it proves the route, the security group and the listener.
wait_for_stun() {
  local ip=$1 transport out
  for transport in udp tcp; do
    out=$("$LIB/stun-probe" "$ip" "$TURN_PORT" "$transport" "$STUN_WAIT_SECS" 2>&1) || {
      say "$(systemctl status --no-pager --lines=20 tincan-media-node.service 2>&1 || true)"
      fail "no STUN answer on $ip:$TURN_PORT/$transport ($out): is the subnet public" \
        "(a route to an internet gateway), does the security group allow it, did the node start?"
    }
    say "$out"
  done
  if [ -n "$TLS_NAME" ]; then
    out=$("$LIB/stun-probe" 127.0.0.1 "$TLS_PORT" tls "$STUN_WAIT_SECS" "$TLS_NAME" 2>&1) \
      || fail "no STUN answer over TLS on port $TLS_PORT for $TLS_NAME ($out): is the certificate in" \
        "TurnTlsCertificateSecret valid, complete (leaf first, then intermediates) and for that name?"
    say "$out"
  fi
}

# ---------------------------------------------------------------- main
main() {
  install -d -m 0755 "$LIB"
  install -d -m 0700 /etc/tincan

  cat > "$IMDS" <<'IMDS'
#!/bin/bash
# imds PATH: one IMDSv2 read.
token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
exec curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
IMDS
  chmod 0755 "$IMDS"
  INSTANCE_ID=$("$IMDS" meta-data/instance-id) || fail "the instance metadata service does not answer"

  # The drain watcher comes first: a node that fails below must not hold
  # every termination of the group for the lifecycle hook's whole timeout.
  cat > "$LIB/drain-watch" <<DRAIN
#!/bin/bash
# Waits for Auto Scaling to start terminating this instance, drains the
# node (SIGTERM), then lets termination continue.
set -uo pipefail
while [ "\$($IMDS meta-data/autoscaling/target-lifecycle-state)" != Terminated ]; do
  sleep 5
done
instance=\$($IMDS meta-data/instance-id)
systemctl stop --no-block tincan-media-node.service
while :; do
  state=\$(systemctl show -p ActiveState --value tincan-media-node.service)
  [ "\$state" = active ] || [ "\$state" = deactivating ] || break
  aws autoscaling record-lifecycle-action-heartbeat --region '$REGION' \\
    --auto-scaling-group-name '$ASG_NAME' --lifecycle-hook-name tincan-drain \\
    --instance-id "\$instance" || true
  sleep 60
done
aws autoscaling complete-lifecycle-action --region '$REGION' \\
  --auto-scaling-group-name '$ASG_NAME' --lifecycle-hook-name tincan-drain \\
  --instance-id "\$instance" --lifecycle-action-result CONTINUE
DRAIN
  chmod 0755 "$LIB/drain-watch"
  cat > /etc/systemd/system/tincan-drain-watch.service <<'UNIT'
[Unit]
Description=Drain the Tincan media node before Auto Scaling terminates it
After=tincan-media-node.service
[Service]
ExecStart=/usr/local/lib/tincan/drain-watch
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now tincan-drain-watch.service
  start_log_shipping

  id -u tincan >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin tincan
  fetch_binary
  check_binary "$BIN"

  public_ipv4
  PRIVATE_IP=$("$IMDS" meta-data/local-ipv4)
  TURN_SECRET=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id '${TurnSecret}' --query SecretString --output text) \
    || fail "cannot read the TURN secret ${TurnSecret}"
  SFU_CONTROL_SECRET=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id '${SfuControlSecret}' --query SecretString --output text) \
    || fail "cannot read the SFU control secret ${SfuControlSecret}"
  umask 077
  cat > /etc/tincan/media-node.env <<ENV
TINCAN_TURN_ADDR=0.0.0.0:3478
TINCAN_TURN_SECRET=$TURN_SECRET
TINCAN_TURN_PUBLIC_IP=$PUBLIC_IP
TINCAN_RELAY_BIND_IP=$PRIVATE_IP
TINCAN_TURN_REALM=tincan
TINCAN_RELAY_PORT_MIN=${RelayPortMin}
TINCAN_RELAY_PORT_MAX=${RelayPortMax}
TINCAN_TURN_USER_QUOTA=10
TINCAN_TURN_MAX_LIFETIME_SECS=3600
TINCAN_SFU_CONTROL_ADDR=0.0.0.0:7881
TINCAN_SFU_CONTROL_SECRET=$SFU_CONTROL_SECRET
TINCAN_SFU_UDP_PORT=3479
TINCAN_SFU_SLOTS=${SfuSlots}
TINCAN_SFU_ROOM_MAX=${RoomMax}
TINCAN_METRICS_ADDR=0.0.0.0:$METRICS_PORT
TINCAN_DRAIN_GRACE_SECS=${DrainGraceSeconds}
TINCAN_LOG_JSON=true
TINCAN_MEDIA_NODES_TABLE=${MediaNodesTable}
TINCAN_NODE_ID=$INSTANCE_ID
AWS_REGION=$REGION
RUST_LOG=info
ENV
  umask 022

  # TURN over TLS (TurnTlsDomain): the load balancer's TCP 443 passes TLS
  # through to the node's unprivileged port 5349, so the node keeps the
  # clients' addresses and needs no root; it advertises
  # turns:DOMAIN:443?transport=tcp to the fleet, and clients get it with
  # their credentials.
  if [ -n '${TurnTlsDomain}' ]; then
    TLS_NAME='${TurnTlsDomain}'
    install_tls_certificate
    cat >> /etc/tincan/media-node.env <<TLS
TINCAN_TURN_TLS_ADDR=0.0.0.0:$TLS_PORT
TINCAN_TURN_TLS_CERT=$TLS_DIR/certificate.pem
TINCAN_TURN_TLS_KEY=$TLS_DIR/private-key.pem
TINCAN_TURN_TLS_NAME=${TurnTlsDomain}:443
TLS
  fi

  # Bigger socket buffers for many UDP flows.
  printf 'net.core.rmem_max=4194304\nnet.core.wmem_max=4194304\n' > /etc/sysctl.d/90-tincan.conf
  sysctl --system >/dev/null

  cat > /etc/systemd/system/tincan-media-node.service <<UNIT
[Unit]
Description=Tincan media node (TURN relay)
After=network-online.target
Wants=network-online.target

[Service]
User=tincan
Group=tincan
EnvironmentFile=/etc/tincan/media-node.env
ExecStart=/usr/local/bin/tincan-media-node
StandardOutput=append:/var/log/tincan/media-node.log
StandardError=append:/var/log/tincan/media-node.log
# SIGTERM drains: no new allocations, running calls get the grace period.
KillSignal=SIGTERM
TimeoutStopSec=$(( ${DrainGraceSeconds} + 60 ))
Restart=on-failure
RestartSec=2
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT

  install_load_publisher

  cat > /etc/systemd/system/tincan-load.service <<'UNIT'
[Unit]
Description=Publish the Tincan media node's load to CloudWatch
[Service]
Type=oneshot
ExecStart=/usr/local/lib/tincan/publish-load
UNIT
  cat > /etc/systemd/system/tincan-load.timer <<'UNIT'
[Unit]
Description=Publish the Tincan media node's load every minute
[Timer]
OnBootSec=60
OnUnitActiveSec=60
[Install]
WantedBy=timers.target
UNIT

  cat > "$LIB/stun-probe" <<'PROBE'
#!/usr/bin/python3
"""stun-probe HOST PORT udp|tcp|tls SECONDS [NAME]: exits 0 as soon as
HOST:PORT answers a STUN Binding request (RFC 5389), 1 if it has not within
SECONDS. Over tls, the certificate must be valid for NAME."""
import os
import socket
import ssl
import struct
import sys
import time

host, port, transport, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
name = sys.argv[5] if len(sys.argv) > 5 else host
deadline = time.monotonic() + limit
last = "no answer"
while time.monotonic() < deadline:
    tid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid
    try:
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as s:
            s.settimeout(2)
            s.connect((host, port))
            if transport == "tls":
                s = ssl.create_default_context().wrap_socket(s, server_hostname=name)
            s.sendall(request)
            data = b""
            while len(data) < 20:
                chunk = s.recv(2048)
                if not chunk:
                    break
                data += chunk
        if len(data) >= 20 and data[0:2] == b"\x01\x01" and data[8:20] == tid:
            print("STUN binding answered on %s:%d/%s" % (host, port, transport))
            sys.exit(0)
        last = "an answer that is not a Binding success"
    except ssl.SSLCertVerificationError as err:
        print(err.verify_message or str(err))
        sys.exit(1)
    except OSError as err:
        last = str(err) or type(err).__name__
    time.sleep(1)
print(last)
sys.exit(1)
PROBE
  chmod 0755 "$LIB/stun-probe"

  systemctl daemon-reload
  systemctl enable --now tincan-media-node.service tincan-load.timer
  wait_for_stun "$PUBLIC_IP"
  say "ready: TURN on $PUBLIC_IP:$TURN_PORT"
  signal SUCCESS
}

trap 'on_error "$LINENO" "$BASH_COMMAND" "$?"' ERR
# Sourced with TINCAN_USER_DATA_NO_MAIN=1 by tests/infra/test_user_data.py.
[ -n "${!TINCAN_USER_DATA_NO_MAIN:-}" ] || main
