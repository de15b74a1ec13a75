#!/usr/bin/env python3
"""tests/aws/smoke.sh's deploy and teardown, without an account: stub
`aws`, `sam`, `cargo`, `npx`, `npm`, `node` and `curl` on PATH record every
call and answer like the real ones; one step at a time is made to fail.

    python3 tests/aws/test_smoke_teardown.py

Checks, for a clean run and for a failure at each step (build, artifact,
deploy, wait, call, measure): the whole teardown runs (web bucket emptied,
stack deleted and waited for, node artifact and the run's bucket removed,
log groups deleted, nothing left tagged with the stack), the report is
written, and the exit status names the failed step. Also: a failing
teardown is itself reported, and --keep leaves the stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "tests" / "aws" / "smoke.sh"
CODES = {"build": 10, "artifact": 11, "deploy": 12, "wait": 13, "call": 14, "measure": 15, "teardown": 16}

# One stub for every command: logs its argv, fails if it matches STUB_FAIL,
# and prints what the real command would for the queries smoke.sh makes.
STUB = r'''#!/usr/bin/env python3
import os, sys
name = os.path.basename(sys.argv[0])
line = " ".join([name] + sys.argv[1:])
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(line + "\n")
fail = os.environ.get("STUB_FAIL", "")
if fail and fail in line:
    sys.stderr.write("stub: failing " + line + "\n")
    sys.exit(1)
args = sys.argv[1:]
def has(*words):
    return all(w in args for w in words)
if name == "aws":
    if has("sts", "get-caller-identity"):
        print("123456789012")
    elif has("ec2", "describe-vpcs"):
        print("vpc-0123")
    elif has("ec2", "describe-subnets"):
        print("subnet-a\tsubnet-b")
    elif has("cloudformation", "describe-stacks"):
        if os.path.exists(os.environ["STUB_DELETED"]):
            sys.stderr.write("Stack does not exist\n")
            sys.exit(254)
        print("https://d111111abcdef8.cloudfront.net/")
    elif has("cloudformation", "describe-stack-resource"):
        print("tincan-smoke-test-webbucket-abc")
    elif has("cloudformation", "delete-stack"):
        open(os.environ["STUB_DELETED"], "w").close()
    elif has("logs", "describe-log-groups"):
        prefix = args[args.index("--log-group-name-prefix") + 1]
        print(prefix + "/http-api\t" + prefix + "/ws-connect")
    elif has("logs", "filter-log-events"):
        print("REPORT RequestId: 1\tDuration: 12.5 ms\tBilled Duration: 13 ms\tInit Duration: 40.1 ms\tREPORT RequestId: 2\tDuration: 3.0 ms")
    elif has("resourcegroupstaggingapi", "get-resources"):
        print("")
elif name == "node" and "--out" in args:
    out = args[args.index("--out") + 1]
    with open(os.path.join(out, "calls.md"), "w") as f:
        f.write("| call | pages | result |\n|---|---|---|\n| stub | 2 | two-way audio on every page |\n")
elif name == "cargo":
    target = os.environ["CARGO_TARGET_DIR"]
    os.makedirs(os.path.join(target, "lambda", "tincan-media-node"), exist_ok=True)
    open(os.path.join(target, "lambda", "tincan-media-node", "bootstrap"), "wb").write(b"binary")
'''

TEARDOWN = [
    "aws cloudformation describe-stack-resource --stack-name tincan-smoke-test",
    "aws s3 rm s3://tincan-smoke-test-webbucket-abc --recursive",
    "aws cloudformation delete-stack --stack-name tincan-smoke-test",
    "aws cloudformation wait stack-delete-complete --stack-name tincan-smoke-test",
    "aws logs delete-log-group --region eu-west-1 --log-group-name /tincan/tincan-smoke-test/http-api",
    "aws logs delete-log-group --region eu-west-1 --log-group-name /aws/lambda/tincan-smoke-test/ws-connect",
    "aws resourcegroupstaggingapi get-resources",
]
ARTIFACT_TEARDOWN = [
    "aws s3 rm s3://tincan-smoke-test-artifacts-123456789012/tincan-smoke-test --recursive",
    "aws s3 rb s3://tincan-smoke-test-artifacts-123456789012",
]


def run(fail: str = "", extra: list[str] | None = None) -> tuple[int, list[str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for name in ("aws", "sam", "cargo", "npx", "npm", "node", "curl"):
            (bin_dir / name).write_text(STUB)
            (bin_dir / name).chmod(0o755)
        log = tmp / "calls.log"
        log.touch()
        out = tmp / "out"
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp),
            "STUB_LOG": str(log),
            "STUB_FAIL": fail,
            "STUB_DELETED": str(tmp / "deleted"),
            "AWS_REGION": "eu-west-1",
            "MONGODB_URI": "mongodb+srv://user:pass@cluster.example.net/",
            "SMOKE_STACK": "tincan-smoke-test",
            "SMOKE_OUT": str(out),
            "CARGO_TARGET_DIR": str(tmp / "target"),
        }
        proc = subprocess.run(["bash", str(SMOKE), *(extra or [])], env=env, capture_output=True, text=True, timeout=120)
        report = (out / "report.md").read_text() if (out / "report.md").exists() else ""
        return proc.returncode, log.read_text().splitlines(), report + proc.stderr


def expect_teardown(calls: list[str], what: str, artifact: bool = True):
    for want in TEARDOWN + (ARTIFACT_TEARDOWN if artifact else []):
        if not any(c.startswith(want) for c in calls):
            raise AssertionError(f"{what}: teardown call missing: {want}\ncalls:\n  " + "\n  ".join(calls))
    # Deleting comes after everything else the run did.
    first_delete = next(i for i, c in enumerate(calls) if "delete-stack" in c)
    if any("deploy" in c.split()[:2] for c in calls[first_delete:]):
        raise AssertionError(f"{what}: a deploy after the delete")


def test_a_clean_run_deploys_calls_measures_and_tears_down():
    code, calls, report = run()
    assert code == 0, report
    for want in ("cargo lambda build", "sam build", "aws s3 mb", "aws s3 cp", "sam deploy --stack-name tincan-smoke-test",
                 "aws cloudformation wait stack-create-complete", "node ", "aws logs filter-log-events"):
        assert any(c.startswith(want) for c in calls), f"no {want!r} in {calls}"
    deploy = next(c for c in calls if c.startswith("sam deploy"))
    assert "SfuSlots=4" in deploy and "MediaNodeArtifactSha256=" in deploy and "VpcId=vpc-0123" in deploy, deploy
    expect_teardown(calls, "clean run")
    assert "result: passed" in report and "two-way audio on every page" in report, report
    assert "| http-api | 2 | 1 | 40 / 40 |" in report, report


def test_each_failing_step_still_tears_everything_down_and_names_itself():
    failures = {
        "build": "cargo lambda build",
        "artifact": "aws s3 cp",
        "deploy": "sam deploy",
        "wait": "wait stack-create-complete",
        "call": "call-driver.mjs",
        "measure": "filter-log-events",
    }
    for step, trigger in failures.items():
        code, calls, report = run(fail=trigger)
        assert code == CODES[step], f"{step}: exit {code}, not {CODES[step]}\n{report}"
        # The artifact bucket exists only once the artifact step has begun.
        expect_teardown(calls, step, artifact=step not in ("build",))
        assert f"FAILED at step {step}" in report, f"{step}: report does not name the step\n{report}"


def test_a_failing_teardown_is_reported():
    code, calls, report = run(fail="delete-stack")
    assert code == CODES["teardown"], report
    # The rest of the teardown ran anyway.
    assert any(c.startswith("aws s3 rb") for c in calls)
    assert any("delete-log-group" in c for c in calls)
    assert "FAILED at step teardown" in report


def test_cdk_deploys_the_cdk_app():
    code, calls, report = run(extra=["--cdk"])
    assert code == 0, report
    assert any(c.startswith("npx --no-install cdk deploy -c stackName=tincan-smoke-test") for c in calls), calls
    assert not any(c.startswith("sam ") for c in calls)
    expect_teardown(calls, "cdk")


def test_keep_leaves_the_stack():
    code, calls, report = run(extra=["--keep"])
    assert code == 0, report
    assert not any("delete-stack" in c for c in calls)
    assert "aws cloudformation delete-stack --stack-name tincan-smoke-test" in report


def main() -> int:
    passed = failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                passed += 1
                print(f"ok   {name}")
            except Exception as error:  # noqa: BLE001 - report and go on
                failed += 1
                print(f"FAIL {name}\n  {error}")
    print(f"smoke-stub: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
