#!/usr/bin/env bash
# Offline checks of the AWS deployment (issue 6):
#   - the CDK app type-checks and synthesizes (placeholder Lambda zips),
#   - cfn-lint passes on template.yaml and on the synthesized template,
#   - `sam validate --lint` passes, and `sam build --beta-features` works as
#     the docs say (tests/infra/test_sam_build.py), if the SAM CLI is installed,
#   - tests/infra/test_templates.py: SAM/CDK parity, tables vs the store code,
#     routes vs the router, env vars vs the Rust config code, IAM, secrets,
#   - tests/infra/test_user_data.py: the media nodes' user data fails loudly
#     (wrong binary, private subnet, no STUN answer) and signals success only
#     once a real tincan-media-node answers STUN (from the suite's one build, tests/build).
# Needs cfn-lint (PyPI) and infra/node_modules (`npm ci`), both installed by
# tests/setup.sh. Ends with `infra: N passed, M failed`; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
# check NAME TIMEOUT CMD...: runs CMD, shows its output only on failure.
check() {
  local name=$1 limit=$2 out
  shift 2
  if out=$(timeout "$limit" "$@" 2>&1); then ok "$name"; else bad "$name"; echo "$out" | sed 's/^/  /'; fi
}

export CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=true SAM_CLI_TELEMETRY=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! command -v cfn-lint >/dev/null; then
  echo "cfn-lint is not installed: run tests/setup.sh (pip install cfn-lint)" >&2
  exit 2
fi
if [ ! -d infra/node_modules ]; then
  (cd infra && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci in infra/ failed" >&2; exit 2; }
fi

# 1. The CDK app compiles (strict TypeScript).
check "infra: tsc --noEmit" 120 bash -c 'cd infra && npx --no-install tsc --noEmit'

# 2. It synthesizes offline. The functions' zips are placeholders: synth only
#    hashes them (tests/infra/lambda-build.sh builds the real ones).
for bin in $(sed -n 's/^name = "\(.*\)"$/\1/p' functions/Cargo.toml | grep -v '^tincan-'); do
  mkdir -p "$work/lambda/$bin"
  printf 'placeholder for cargo-lambda output\n' >"$work/lambda/$bin/bootstrap"
done
check "infra: cdk synth" 180 bash -c "cd infra && npx --no-install cdk synth --quiet --no-notices \
  -c lambdaDir='$work/lambda' -o '$work/cdk.out'"
CDK_TEMPLATE="$work/cdk.out/tincan.template.json"

# 3. cfn-lint, both templates.
check "cfn-lint template.yaml" 120 cfn-lint template.yaml
if [ -f "$CDK_TEMPLATE" ]; then
  check "cfn-lint CDK template" 120 cfn-lint "$CDK_TEMPLATE"
else
  bad "cfn-lint CDK template (no synthesized template)"
fi

# 4. sam validate --lint (SAM's own translator + cfn-lint), if SAM is here.
#    It is a 340 MB virtualenv, so the suite does not install it:
#    python3 -m venv ~/.cache/tincan-sam-venv && ~/.cache/tincan-sam-venv/bin/pip install aws-sam-cli
SAM_BIN=${TINCAN_SAM:-$(command -v sam || true)}
[ -n "$SAM_BIN" ] || { [ -x "$HOME/.cache/tincan-sam-venv/bin/sam" ] && SAM_BIN=$HOME/.cache/tincan-sam-venv/bin/sam; }
if [ -n "$SAM_BIN" ]; then
  check "sam validate --lint" 180 env AWS_DEFAULT_REGION=us-east-1 "$SAM_BIN" validate --lint -t template.yaml
else
  skipped=$((skipped + 1))
  echo "skip sam validate --lint: SAM CLI not installed (set TINCAN_SAM or see tests/infra/run.sh)"
fi

# py_suite NAME TIMEOUT SCRIPT ARGS...: runs a Python check file that ends
# with `NAME: N passed, M failed` and adds its counts.
py_suite() {
  local name=$1 limit=$2 out line p f
  shift 2
  out=$(timeout "$limit" python3 "$@" 2>&1)
  echo "$out" | grep -v "^$name:"
  line=$(echo "$out" | grep "^$name:" || true)
  if [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    passed=$((passed + p))
    failed=$((failed + f))
  else
    bad "$1 did not finish"
    echo "$out" | tail -20 | sed 's/^/  /'
  fi
}

# 4b. `sam build` as the docs say, offline: the real SAM CLI with only
#     `cargo lambda build` stubbed (tests/infra/test_sam_build.py).
if [ -n "$SAM_BIN" ]; then
  py_suite infra-sam-build 300 tests/infra/test_sam_build.py "$SAM_BIN"
else
  skipped=$((skipped + 1))
  echo "skip tests/infra/test_sam_build.py: SAM CLI not installed"
fi

# 5. Parity, traceability, IAM and secrets.
py_suite infra-python 120 tests/infra/test_templates.py "$CDK_TEMPLATE"

# 6. The media nodes' user data, step by step, with stubbed AWS commands and
#    a real tincan-media-node on loopback for the STUN probe.
bin_dir="${TINCAN_BIN_DIR:-$(bash tests/build)}" || bad "bash tests/build"
NODE_BIN="$bin_dir/tincan-media-node"
py_suite infra-user-data 180 tests/infra/test_user_data.py "$NODE_BIN"

[ "$skipped" -eq 0 ] || echo "infra: $skipped check(s) skipped"
echo "infra: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
