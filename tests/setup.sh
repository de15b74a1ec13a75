#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
# Debian packages (browser, TURN peers, netns tools), PyPI servers (moto for
# DynamoDB, SecantusDB for MongoDB, cfn-lint) and npm packages for the
# browser tests. Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(chromium chromium-driver coturn iproute2 util-linux)
PIP_PACKAGES=('moto[server]==5.2.*' 'secantusdb==0.7.0b3' 'cfn-lint==1.*' 'cargo-lambda==1.9.*')

need_apt=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import moto, secantus' 2>/dev/null || ! command -v cfn-lint >/dev/null \
  || ! command -v cargo-lambda >/dev/null; then
  echo "setup: pip install ${PIP_PACKAGES[*]}"
  python3 -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
  # pyenv installs console scripts behind shims it must be told about.
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

# The SAM CLI (for `sam validate --lint`) in a venv of its own: it pins
# dependencies that would clash with the packages above.
SAM_VENV="$HOME/.cache/tincan-sam-venv"
if [ ! -x "$SAM_VENV/bin/sam" ]; then
  echo "setup: aws-sam-cli in $SAM_VENV"
  python3 -m venv "$SAM_VENV"
  "$SAM_VENV/bin/pip" install -q --disable-pip-version-check 'aws-sam-cli>=1.170,<2'
fi

for dir in tests/browser infra; do
  if [ -f "$dir/package.json" ] && [ ! -d "$dir/node_modules" ]; then
    echo "setup: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
