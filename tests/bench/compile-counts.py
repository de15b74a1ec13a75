#!/usr/bin/env python3
"""How many times each crate is compiled by a sequence of cargo commands that
share one target dir, read from cargo's unit graphs without building.

    python3 tests/bench/compile-counts.py 'test --workspace --no-run' 'build -p tincan-local'

Each argument is one cargo command (without `cargo`). A unit is identified
as cargo identifies an artifact: its package, target, profile, mode and
features, and the identities of the units it depends on; a command compiles
the units no earlier command compiled. Prints each command's new units, then
the crates compiled more than once (one line per crate and target, with how
many times). `--unit-graph` is unstable: this reads it from the stable
toolchain with RUSTC_BOOTSTRAP=1, for this measurement only.

Measured 2026-12-07: the suite's builds before `tests/build` (`cargo test
--workspace`, then `cargo build -p` of tincan-local, tincan-load and
tincan-functions, what `cargo lambda watch -p tincan-functions` ran, the
soak's `-p tincan-load` and the browser tests' `-p tincan-local`) compiled
the MongoDB driver and reqwest 5 times each, the AWS SDK crates and axum 4
times: 741 compiles in all. `tests/build` then `cargo test --workspace`:
503, each crate once (doctests aside).
"""
import collections
import hashlib
import json
import os
import subprocess
import sys


def unit_graph(command):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    out = subprocess.run(["cargo", *command.split(), "-Z", "unstable-options", "--unit-graph"],
                         env=env, check=True, capture_output=True, text=True).stdout
    units = json.loads(out)["units"]
    ids = {}

    def identity(i):
        if i not in ids:
            unit = units[i]
            profile = {k: v for k, v in unit["profile"].items() if k != "name"}
            key = [unit["pkg_id"], unit["target"]["name"], unit["target"]["kind"], profile,
                   unit["mode"], unit["features"],
                   sorted(identity(d["index"]) for d in unit["dependencies"])]
            ids[i] = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return ids[i]

    return {identity(i): units[i] for i in range(len(units))}


def crate(unit):
    name = unit["pkg_id"].split("#")[-1].split("@")[0].split("/")[-1]
    return f"{name} {unit['target']['name']} ({unit['mode']} {','.join(unit['target']['kind'])})"


def main(commands):
    if not commands:
        sys.exit(__doc__)
    compiled = {}
    for command in commands:
        units = unit_graph(command)
        new = {k: u for k, u in units.items() if k not in compiled}
        compiled.update(new)
        print(f"{len(units):5} units, {len(new):5} compiled  cargo {command}")
    times = collections.Counter(crate(u) for u in compiled.values()
                                if u["mode"] in ("build", "test") and "custom-build" not in u["target"]["kind"])
    again = {name: n for name, n in times.items() if n > 1}
    print(f"total {sum(times.values())} compiles; {len(again)} crate targets compiled more than once"
          " (some are two versions of one crate, or host and target copies):")
    for name, n in sorted(again.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n}x {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
