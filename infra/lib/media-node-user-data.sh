#!/bin/bash
# Installs tincan-media-node as a systemd service, publishes its
# load to CloudWatch every minute, and drains it when Auto Scaling
# terminates the instance (lifecycle hook tincan-drain).
set -euo pipefail
REGION='${AWS::Region}'
ASG_NAME='${AWS::StackName}-media-nodes'
install -d -m 0755 /usr/local/lib/tincan
install -d -m 0700 /etc/tincan

cat > /usr/local/lib/tincan/imds <<'IMDS'
#!/bin/bash
# imds PATH: one IMDSv2 read.
token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
exec curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
IMDS
chmod 0755 /usr/local/lib/tincan/imds
IMDS=/usr/local/lib/tincan/imds

id -u tincan >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin tincan
aws s3 cp --region "$REGION" 's3://${MediaNodeArtifactBucket}/${MediaNodeArtifactKey}' /usr/local/bin/tincan-media-node
chmod 0755 /usr/local/bin/tincan-media-node

PUBLIC_IP=$($IMDS meta-data/public-ipv4)
PRIVATE_IP=$($IMDS meta-data/local-ipv4)
INSTANCE_ID=$($IMDS meta-data/instance-id)
TURN_SECRET=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id '${TurnSecret}' --query SecretString --output text)
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
TINCAN_METRICS_ADDR=127.0.0.1:9100
TINCAN_DRAIN_GRACE_SECS=${DrainGraceSeconds}
TINCAN_LOG_JSON=true
TINCAN_MEDIA_NODES_TABLE=${MediaNodesTable}
TINCAN_NODE_ID=$INSTANCE_ID
AWS_REGION=$REGION
RUST_LOG=info
ENV
umask 022

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

cat > /usr/local/lib/tincan/publish-load <<LOAD
#!/bin/bash
# Live TURN allocations -> CloudWatch Tincan/MediaNode TurnAllocations,
# the metric the group's target-tracking policy follows.
set -euo pipefail
value=\$(curl -sf http://127.0.0.1:9100/metrics | awk '\$1 == "tincan_turn_allocations" { print \$2 }')
[ -n "\$value" ] || exit 0
aws cloudwatch put-metric-data --region '$REGION' --namespace Tincan/MediaNode \\
  --metric-name TurnAllocations --unit Count --value "\$value" \\
  --dimensions 'AutoScalingGroupName=$ASG_NAME'
LOAD
chmod 0755 /usr/local/lib/tincan/publish-load

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

cat > /usr/local/lib/tincan/drain-watch <<DRAIN
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
chmod 0755 /usr/local/lib/tincan/drain-watch
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
systemctl enable --now tincan-media-node.service tincan-load.timer tincan-drain-watch.service
