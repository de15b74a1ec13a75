#!/usr/bin/env bash
# Builds every Lambda (the [[bin]]s of tincan-functions) for the Lambda
# target with cargo-lambda, zipped, and prints each artifact's size.
#
#   bash tests/infra/lambda-build.sh            # arm64 (the template default)
#   TINCAN_LAMBDA_ARCH=x86_64 bash tests/infra/lambda-build.sh
#
# cargo-lambda cross-compiles with zig (PyPI `ziglang`), so no Docker or
# cross toolchain is needed. A full release build takes 10+ minutes on two
# cores, so this is not part of tests/infra/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tincan-target}"
ARCH="${TINCAN_LAMBDA_ARCH:-arm64}"
BINS=(ws-connect ws-disconnect ws-default ws-sweep http-api)

command -v cargo-lambda >/dev/null || python3 -m pip install -q --disable-pip-version-check cargo-lambda
python3 -c 'import ziglang' 2>/dev/null || command -v zig >/dev/null \
  || python3 -m pip install -q --disable-pip-version-check ziglang

case "$ARCH" in
  arm64) flag=--arm64 ;;
  x86_64) flag=--x86-64 ;;
  *) echo "TINCAN_LAMBDA_ARCH must be arm64 or x86_64" >&2; exit 2 ;;
esac

start=$(date +%s)
cargo lambda build --release "$flag" -p tincan-functions --output-format zip --locked
echo "lambda-build: $ARCH release build took $(( $(date +%s) - start ))s"

status=0
for bin in "${BINS[@]}"; do
  zip="$CARGO_TARGET_DIR/lambda/$bin/bootstrap.zip"
  if [ -f "$zip" ]; then
    printf 'lambda-build: %-14s %8d bytes zipped (%s)\n' "$bin" "$(stat -c %s "$zip")" "$zip"
  else
    echo "lambda-build: $bin: no artifact at $zip" >&2
    status=1
  fi
done
exit $status
