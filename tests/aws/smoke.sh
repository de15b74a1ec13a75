#!/usr/bin/env bash
# End-to-end proof of a deployment: build, deploy a fresh stack under a
# unique name, call through the deployed page, measure, tear down.
#
#   tests/aws/smoke.sh            SAM (template.yaml)
#   tests/aws/smoke.sh --cdk      the CDK app in infra/
#   tests/aws/smoke.sh --keep     leave the stack up for inspection (prints how to delete it)
#   tests/aws/smoke.sh --local    the same calls, assertions and report against a
#                                 tincan-local started here (no AWS; the suite runs this)
#
# AWS mode needs credentials for the AWS CLI, AWS_REGION, and MONGODB_URI
# (e.g. a free Atlas cluster allowing 0.0.0.0/0). Optional: SMOKE_STACK (default
# tincan-smoke-<random>), SMOKE_VPC_ID and SMOKE_SUBNET_IDS (default: the
# region's default VPC and its subnets), SMOKE_ARTIFACT_BUCKET (default: a
# bucket created for the run and deleted after it).
#
# Calls (tests/aws/call-driver.mjs, headless Chromium through the page):
# two pages direct, two pages relay-only, five pages on the SFU; two-way
# audio asserted on every page. The report (tests/output/smoke/report.md,
# SMOKE_OUT to change) has sign-in and join-to-first-audio times and, on
# AWS, each function's init and invoke durations from its REPORT lines.
#
# A trap always tears down: the stack (which empties its web bucket), the
# node artifact (and the bucket if the run made it), the log groups, and
# checks that nothing of the stack is left. Exit status: 0 passed; 10 build,
# 11 artifact, 12 deploy, 13 wait, 14 call, 15 measure, 16 teardown (only
# when everything before it passed); 2 usage.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mode=aws tool=sam keep=0
for arg in "$@"; do
  case "$arg" in
    --local) mode=local ;;
    --cdk) tool=cdk ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "smoke: unknown argument $arg" >&2; exit 2 ;;
  esac
done

out="${SMOKE_OUT:-$root/tests/output/smoke}"
mkdir -p "$out"
log="$out/smoke.log"
: >"$log"
declare -A code=([build]=10 [artifact]=11 [deploy]=12 [wait]=13 [call]=14 [measure]=15 [teardown]=16)
failed_step=""
current=""
started=$(date +%s)
say() { echo "smoke: $*" | tee -a "$log" >&2; }

# run STEP CMD...: runs one step; the first failure is the one reported.
run() {
  local step=$1
  shift
  current=$step
  say "== $step"
  local t0=$SECONDS
  if "$@"; then
    say "$step done in $((SECONDS - t0)) s"
    return 0
  fi
  say "$step FAILED"
  [ -n "$failed_step" ] || failed_step=$step
  return 1
}

# ----------------------------------------------------------------- local

local_pid=""
local_data=""
local_start() {
  local bin="${TINCAN_LOCAL_BIN:-${TINCAN_BIN_DIR:-}/tincan-local}"
  if [ ! -x "$bin" ]; then
    bin="$(bash "$root/tests/build")/tincan-local" || return 1
  fi
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  local port turn mgmt
  port=$(free_port) turn=$(free_port) mgmt=$(free_port)
  local_data=$(mktemp -d /tmp/tincan-smoke.XXXXXX)
  # Four SFU slots: each of the five pages hears all four others.
  TINCAN_ADDR="127.0.0.1:$port" TINCAN_MANAGEMENT_ADDR="127.0.0.1:$mgmt" \
  TINCAN_TURN_ADDR="127.0.0.1:$turn" TINCAN_DATA_DIR="$local_data" \
  TINCAN_SFU_SLOTS=4 TINCAN_REGISTRATIONS_PER_ADDR=0 TINCAN_WEB_DIR="$root/web" \
  RUST_LOG="${RUST_LOG:-info}" "$bin" >"$out/tincan-local.log" 2>&1 &
  local_pid=$!
  app_url="http://127.0.0.1:$port/"
  local deadline=$((SECONDS + 90))
  until curl -fsS -o /dev/null --max-time 2 "${app_url}settings.json"; do
    kill -0 "$local_pid" 2>/dev/null || { say "tincan-local exited (see $out/tincan-local.log)"; return 1; }
    [ $SECONDS -lt $deadline ] || { say "tincan-local not answering after 90 s"; return 1; }
    sleep 0.2
  done
}

# ------------------------------------------------------------------- AWS

region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
stack="${SMOKE_STACK:-tincan-smoke-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')}"
artifact_bucket="${SMOKE_ARTIFACT_BUCKET:-}"
made_bucket=0
artifact_prefix="$stack"
deploy_started_ms=0
app_url=""

aws_build() {
  cargo lambda build --release --arm64 -p tincan-media-node --bin tincan-media-node || return 1
  if [ "$tool" = sam ]; then
    (cd "$root" && sam build --beta-features) || return 1
  else
    cargo lambda build --release --arm64 -p tincan-functions || return 1
    (cd "$root/infra" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  fi
}

aws_artifact() {
  local account
  account=$(aws sts get-caller-identity --query Account --output text) || return 1
  if [ -z "$artifact_bucket" ]; then
    artifact_bucket="$stack-artifacts-$account"
    aws s3 mb "s3://$artifact_bucket" --region "$region" || return 1
    made_bucket=1
  fi
  local bin="${CARGO_TARGET_DIR:-$root/target}/lambda/tincan-media-node/bootstrap"
  node_sha=$(sha256sum "$bin" | cut -d' ' -f1) || return 1
  node_key="$artifact_prefix/tincan-media-node"
  aws s3 cp "$bin" "s3://$artifact_bucket/$node_key" || return 1
}

aws_network() {
  vpc="${SMOKE_VPC_ID:-$(aws ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)}" || return 1
  subnets="${SMOKE_SUBNET_IDS:-$(aws ec2 describe-subnets --filters "Name=vpc-id,Values=$vpc" --query 'Subnets[].SubnetId' --output text | tr '\t' ',')}" || return 1
  [ -n "$vpc" ] && [ "$vpc" != None ] && [ -n "$subnets" ] || { say "no VPC/subnets (set SMOKE_VPC_ID, SMOKE_SUBNET_IDS)"; return 1; }
}

aws_deploy() {
  [ -n "${MONGODB_URI:-}" ] || { say "MONGODB_URI is not set"; return 1; }
  aws_network || return 1
  deploy_started_ms=$(($(date +%s) * 1000))
  # SfuSlots=4: each of the five pages hears all four others. AllAtOnce: a
  # fresh stack has no traffic to shift gradually.
  local params=(
    "MongoDbUri=$MONGODB_URI" "VpcId=$vpc" "SubnetIds=$subnets"
    "MediaNodeArtifactBucket=$artifact_bucket" "MediaNodeArtifactKey=$node_key"
    "MediaNodeArtifactSha256=$node_sha" "SfuSlots=4" "LambdaDeploymentType=AllAtOnce"
  )
  if [ "$tool" = sam ]; then
    (cd "$root" && sam deploy --stack-name "$stack" --region "$region" \
      --s3-bucket "$artifact_bucket" --s3-prefix "$artifact_prefix/sam" \
      --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
      --no-confirm-changeset --no-fail-on-empty-changeset \
      --parameter-overrides "${params[@]}")
  else
    local flags=()
    for p in "${params[@]}"; do flags+=(--parameters "$p"); done
    (cd "$root/infra" && npx --no-install cdk deploy -c stackName="$stack" \
      --require-approval never "${flags[@]}")
  fi
}

output() {
  aws cloudformation describe-stacks --stack-name "$stack" --region "$region" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

aws_wait() {
  aws cloudformation wait stack-create-complete --stack-name "$stack" --region "$region" || return 1
  app_url=$(output AppUrl) || return 1
  [ -n "$app_url" ] && [ "$app_url" != None ] || { say "no AppUrl output"; return 1; }
  say "AppUrl: $app_url"
  # CloudFront takes a few minutes to serve a new distribution everywhere.
  local deadline=$((SECONDS + 1200))
  until curl -fsS -o /dev/null --max-time 10 "${app_url}settings.json"; do
    [ $SECONDS -lt $deadline ] || { say "${app_url}settings.json not served after 20 min"; return 1; }
    sleep 10
  done
}

call() {
  node "$root/tests/aws/call-driver.mjs" --app-url "$app_url" --out "$out"
}

# One line per function: invocations, init (cold starts) and invoke durations.
aws_measure() {
  local fn group
  echo "| function | invocations | cold starts | init ms (median / max) | invoke ms (median / max) |" >"$out/lambdas.md"
  echo "|---|---|---|---|---|" >>"$out/lambdas.md"
  for fn in ws-connect ws-disconnect ws-default http-api; do
    group="/tincan/$stack/$fn"
    aws logs filter-log-events --region "$region" --log-group-name "$group" \
      --start-time "$deploy_started_ms" --filter-pattern '"REPORT RequestId"' \
      --query 'events[].message' --output text >"$out/report-lines-$fn.txt" || return 1
    python3 - "$fn" "$out/report-lines-$fn.txt" >>"$out/lambdas.md" <<'EOF' || return 1
import re, statistics, sys
fn, path = sys.argv[1], sys.argv[2]
text = open(path).read()
reports = [r for r in text.split("REPORT RequestId")[1:]]
inv = [float(m.group(1)) for r in reports for m in [re.search(r"\tDuration: ([\d.]+) ms", r)] if m]
init = [float(m.group(1)) for r in reports for m in [re.search(r"Init Duration: ([\d.]+) ms", r)] if m]
fmt = lambda xs: f"{statistics.median(xs):.0f} / {max(xs):.0f}" if xs else "n/a"
print(f"| {fn} | {len(inv)} | {len(init)} | {fmt(init)} | {fmt(inv)} |")
EOF
  done
}

local_measure() {
  printf '%s\n' "Lambda durations: n/a (tincan-local runs the handlers in-process)." >"$out/lambdas.md"
}

write_report() {
  {
    echo "# Tincan smoke run"
    echo
    echo "- target: $([ "$mode" = local ] && echo "tincan-local at $app_url" || echo "stack \`$stack\` ($tool) in $region, $app_url")"
    echo "- result: $([ -z "$failed_step" ] && echo passed || echo "FAILED at step $failed_step")"
    echo "- wall time: $(($(date +%s) - started)) s"
    echo
    echo "## Calls"
    echo
    if [ -f "$out/calls.md" ]; then cat "$out/calls.md"; else echo "no calls made"; fi
    echo
    echo "## Lambdas"
    echo
    if [ -f "$out/lambdas.md" ]; then cat "$out/lambdas.md"; else echo "not measured"; fi
  } >"$out/report.md"
}

# -------------------------------------------------------------- teardown

# Every part runs whatever failed before it; returns 1 if any part failed.
aws_teardown() {
  local ok=0 web_bucket="" g
  if [ "$keep" = 1 ]; then
    say "--keep: stack $stack left up; delete it with: aws cloudformation delete-stack --stack-name $stack --region $region"
    return 0
  fi
  web_bucket=$(aws cloudformation describe-stack-resource --stack-name "$stack" --region "$region" \
    --logical-resource-id WebBucket --query StackResourceDetail.PhysicalResourceId --output text 2>/dev/null) || web_bucket=""
  # The stack empties its web bucket on delete; emptied here too, in case
  # the deploy stopped before the helper that does it existed.
  if [ -n "$web_bucket" ] && [ "$web_bucket" != None ]; then
    aws s3 rm "s3://$web_bucket" --recursive --region "$region" || ok=1
  fi
  aws cloudformation delete-stack --stack-name "$stack" --region "$region" || ok=1
  aws cloudformation wait stack-delete-complete --stack-name "$stack" --region "$region" || ok=1
  if [ -n "$artifact_bucket" ]; then
    aws s3 rm "s3://$artifact_bucket/$artifact_prefix" --recursive --region "$region" || ok=1
    if [ "$made_bucket" = 1 ]; then aws s3 rb "s3://$artifact_bucket" --region "$region" || ok=1; fi
  fi
  # Log groups: the stack's own (/tincan/STACK/...) and those Lambda made
  # for the deploy-time helpers (/aws/lambda/STACK-...).
  for prefix in "/tincan/$stack" "/aws/lambda/$stack"; do
    for g in $(aws logs describe-log-groups --region "$region" --log-group-name-prefix "$prefix" \
      --query 'logGroups[].logGroupName' --output text); do
      [ "$g" = None ] || aws logs delete-log-group --region "$region" --log-group-name "$g" || ok=1
    done
  done
  # Nothing billable left: no stack, no resource tagged with it, no log group.
  local left
  if aws cloudformation describe-stacks --stack-name "$stack" --region "$region" >/dev/null 2>&1; then
    say "stack $stack still exists"; ok=1
  fi
  left=$(aws resourcegroupstaggingapi get-resources --region "$region" \
    --tag-filters "Key=aws:cloudformation:stack-name,Values=$stack" \
    --query 'ResourceTagMappingList[].ResourceARN' --output text) || ok=1
  if [ -n "$left" ] && [ "$left" != None ]; then say "left behind: $left"; ok=1; fi
  return $ok
}

local_teardown() {
  if [ -n "$local_pid" ]; then kill "$local_pid" 2>/dev/null; wait "$local_pid" 2>/dev/null; fi
  [ -z "$local_data" ] || rm -rf "$local_data"
  return 0
}

if [ "$mode" = aws ] && [ -z "$region" ]; then
  say "AWS_REGION is not set"
  exit 2
fi

finished=0
finish() {
  [ "$finished" = 0 ] || return
  finished=1
  trap '' INT TERM
  [ -n "$failed_step" ] || [ -z "$current" ] || [ "$current" = done ] || failed_step=$current
  run teardown "${mode}_teardown"
  write_report
  say "report: $out/report.md"
  cat "$out/report.md" >&2
  if [ -n "$failed_step" ]; then
    say "FAILED at step $failed_step"
    exit "${code[$failed_step]}"
  fi
  say "passed"
  exit 0
}
trap finish EXIT
trap 'say "interrupted during $current"; [ -n "$failed_step" ] || failed_step=$current; exit 130' INT TERM

if [ "$mode" = local ]; then
  run deploy local_start && run call call && run measure local_measure
else
  say "stack $stack ($tool) in $region"
  run build aws_build && run artifact aws_artifact && run deploy aws_deploy \
    && run wait aws_wait && run call call && run measure aws_measure
fi
current=done
