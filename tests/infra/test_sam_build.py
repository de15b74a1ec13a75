#!/usr/bin/env python3
"""`sam build` as docs/deploy.md says to run it, offline.

    python3 tests/infra/test_sam_build.py SAM_BIN

The real compile (`cargo lambda build --release` of every function, cross to
arm64) takes 10+ minutes on two cores and needs the aarch64 standard library,
so it is `tests/infra/lambda-build.sh`, not this. Everything else is real:
the SAM CLI reads template.yaml and runs its rust-cargolambda workflow on a
copy of the repository; only `cargo lambda build` is a stub, which records
its working directory, CARGO_TARGET_DIR and arguments and writes a
placeholder `bootstrap` where cargo-lambda writes it. The checks are every
assumption that build makes:

- it needs no answer at a prompt (stdin is closed) with the flags we document;
- it honours an exported CARGO_TARGET_DIR (as the repo's scripts export it)
  and, without one, leaves nothing untracked in the clone;
- each function gets its own [[bin]] (`--bin NAME`), `--release`, and the
  architecture of the template (`--arm64`, or none for x86_64, cargo-lambda's
  default), both by default and with `--parameter-overrides`;
- every flag it passes is one the installed cargo-lambda accepts (checked by
  the real `cargo lambda build FLAGS --help`), and a `--profile` names a
  `[profile.*]` of Cargo.toml.

Prints one line per test and `infra-sam-build: N passed, M failed`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from suite_runner import run_tests

REPO = Path(__file__).resolve().parents[2]
SAM = sys.argv[1] if len(sys.argv) > 1 else shutil.which("sam")
REAL_CARGO = shutil.which("cargo")

STUB_CARGO = r"""#!/bin/bash
# `cargo lambda ...` is recorded and faked; anything else is the real cargo.
if [ "$1" = lambda ]; then
  echo "cwd=$PWD|target=${CARGO_TARGET_DIR-<unset>}|args=${*:2}" >> "$STUB_LOG"
  bin=""; prev=""
  for a in "$@"; do [ "$prev" = --bin ] && bin=$a; prev=$a; done
  dir="${CARGO_TARGET_DIR:-target}/lambda/$bin"
  mkdir -p "$dir" && echo "placeholder for $bin" > "$dir/bootstrap"
  exit 0
fi
exec "$REAL_CARGO" "$@"
"""


def fail(message: str):
    raise AssertionError(message)


def bins() -> set[str]:
    manifest = tomllib.loads((REPO / "functions/Cargo.toml").read_text())
    return {b["name"] for b in manifest["bin"]}


class Build:
    """One `sam build` on a fresh copy of the repository's tracked files."""

    def __init__(self, *extra: str, target_dir: bool = True):
        self.tmp = Path(tempfile.mkdtemp(prefix="tincan-sam-build-"))
        self.repo = self.tmp / "repo"
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout.decode().split("\0")
        for rel in filter(None, files):
            src = REPO / rel
            if src.is_file():
                dst = self.repo / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        stubs = self.tmp / "bin"
        stubs.mkdir()
        (stubs / "cargo").write_text(STUB_CARGO)
        (stubs / "cargo-lambda").write_text("#!/bin/bash\nexit 0\n")
        for f in stubs.iterdir():
            f.chmod(0o755)
        self.log = self.tmp / "cargo-lambda.log"
        self.target = self.tmp / "cargo-target"
        env = dict(
            os.environ,
            PATH=f"{stubs}:{os.environ['PATH']}",
            STUB_LOG=str(self.log),
            REAL_CARGO=REAL_CARGO,
            SAM_CLI_TELEMETRY="0",
            AWS_DEFAULT_REGION="us-east-1",
        )
        env.pop("CARGO_TARGET_DIR", None)
        if target_dir:
            env["CARGO_TARGET_DIR"] = str(self.target)
        self.build_dir = self.tmp / "repo/.aws-sam/build"
        self.done = subprocess.run(
            [SAM, "build", "--beta-features", *extra],
            cwd=self.repo, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=300,
        )
        self.calls = [
            dict(part.split("=", 1) for part in line.split("|"))
            for line in (self.log.read_text().splitlines() if self.log.exists() else [])
        ]

    def succeeded(self):
        if self.done.returncode != 0:
            fail(f"sam build failed ({self.done.returncode}):\n{self.done.stdout[-2000:]}\n{self.done.stderr[-2000:]}")

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def with_build(*extra: str, target_dir: bool = True):
    def wrap(test):
        def run():
            build = Build(*extra, target_dir=target_dir)
            try:
                test(build)
            finally:
                build.close()
        run.__name__ = test.__name__
        return run
    return wrap


def check_calls(build: Build, arch_flag: str | None):
    names = bins()
    built = [re.search(r"--bin (\S+)", c["args"]).group(1) for c in build.calls]
    if sorted(built) != sorted(names):
        fail(f"sam build built {built}, the [[bin]]s are {sorted(names)}")
    for call in build.calls:
        args = call["args"].split()
        if Path(call["cwd"]).resolve() != (build.repo / "functions").resolve():
            fail(f"cargo lambda ran in {call['cwd']}, not functions/")
        if "--release" not in args and "--profile" not in args:
            fail(f"not a release build: {args}")
        flags = {"--arm64", "--x86-64"} & set(args)
        if flags != ({arch_flag} if arch_flag else set()):
            fail(f"architecture flags {sorted(flags)}, want {arch_flag or 'none (x86_64)'}: {args}")


@with_build()
def test_readme_build_with_cargo_target_dir_exported(build):
    build.succeeded()
    check_calls(build, "--arm64")
    for call in build.calls:
        if call["target"] != str(build.target):
            fail(f"CARGO_TARGET_DIR was {call['target']}, the exported one is {build.target}")
    for lid in ("WsConnectFunction", "WsDisconnectFunction", "WsDefaultFunction", "WsSweepFunction", "HttpApiFunction"):
        art = build.build_dir / lid / "bootstrap"
        if not art.exists():
            fail(f"no artifact {art}")
    # Each function got its own binary, not whichever was built last.
    binary = {"WsConnectFunction": "ws-connect", "WsDisconnectFunction": "ws-disconnect",
              "WsDefaultFunction": "ws-default", "WsSweepFunction": "ws-sweep", "HttpApiFunction": "http-api"}
    for lid, name in binary.items():
        text = (build.build_dir / lid / "bootstrap").read_text()
        if text.strip() != f"placeholder for {name}":
            fail(f"{lid} got {text.strip()!r}")
    if (build.repo / "functions/target").exists():
        fail("the build left functions/target/ in the clone")


@with_build(target_dir=False)
def test_build_without_cargo_target_dir_leaves_nothing_untracked(build):
    build.succeeded()
    check_calls(build, "--arm64")
    subprocess.run(["git", "init", "-q"], cwd=build.repo, check=True)
    shown = subprocess.run(
        ["git", "ls-files", "-o", "--exclude-standard"],
        cwd=build.repo, capture_output=True, text=True, check=True,
    ).stdout.split()
    before = set(subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split())
    new = [f for f in shown if f not in before]
    if new:
        fail(f"the build leaves files .gitignore does not cover: {new[:10]}")


@with_build("--parameter-overrides", "LambdaArchitecture=x86_64")
def test_x86_64_reaches_the_build(build):
    build.succeeded()
    check_calls(build, None)
    built_template = (build.build_dir / "template.yaml").read_text()
    if "x86_64" not in built_template:
        fail("the built template does not carry x86_64")


def test_every_flag_is_one_cargo_lambda_accepts():
    build = Build()
    try:
        build.succeeded()
        profiles = set(tomllib.loads((REPO / "Cargo.toml").read_text()).get("profile", {}))
        profiles |= {"release", "dev"}
        for call in build.calls:
            args = call["args"].split()
            if args[0] != "build":
                fail(f"unexpected cargo lambda subcommand {args}")
            if "--profile" in args:
                profile = args[args.index("--profile") + 1]
                if profile not in profiles:
                    fail(f"--profile {profile} is not a [profile.*] of Cargo.toml ({sorted(profiles)})")
            done = subprocess.run(
                [REAL_CARGO, "lambda", *args, "--help"],
                cwd=REPO / "functions", capture_output=True, text=True, timeout=60,
            )
            if done.returncode != 0:
                fail(f"cargo lambda rejects {args}: {done.stderr[:500]}")
    finally:
        build.close()


def test_gitignore_covers_build_outputs():
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "functions/target/lambda/x/bootstrap", "target/lambda/x/bootstrap",
         ".aws-sam/build/template.yaml"],
        cwd=REPO, capture_output=True, text=True,
    ).stdout.split()
    want = ["functions/target/lambda/x/bootstrap", "target/lambda/x/bootstrap", ".aws-sam/build/template.yaml"]
    if ignored != want:
        fail(f".gitignore covers {ignored}, want {want}")


def test_docs_show_the_build_that_is_tested():
    for rel in ("README.md", "docs/deploy.md"):
        text = (REPO / rel).read_text()
        # Commands, in inline code or at the start of a line; a bare
        # `sam build` in prose names the command, it does not run it.
        commands = re.findall(r"`(sam build[^`]*)`", text) + re.findall(r"^(sam build.*)$", text, re.M)
        for command in commands:
            if command.strip() != "sam build" and "--beta-features" not in command:
                fail(f"{rel}: `{command}` lacks --beta-features")
    deploy = (REPO / "docs/deploy.md").read_text()
    if "--parameter-overrides LambdaArchitecture=x86_64" not in deploy:
        fail("docs/deploy.md does not say how to build for x86_64")


# ------------------------------------------------------------------ runner


def main() -> int:
    if not SAM or not REAL_CARGO:
        print("infra-sam-build: 0 passed, 1 failed (no SAM CLI or cargo)")
        return 1
    return run_tests(globals(), "infra-sam-build")


if __name__ == "__main__":
    sys.exit(main())
