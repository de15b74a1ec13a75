#!/usr/bin/env python3
"""Behaviour of the media nodes' user data (infra/lib/media-node-user-data.sh,
inlined in template.yaml): every way a node can fail to come up says why on
the console and signals FAILURE to CloudFormation, and the STUN probe that
gates SUCCESS answers only when a TURN listener does.

    python3 tests/infra/test_user_data.py MEDIA_NODE_BIN

The script is rendered as CloudFormation's Fn::Sub would, sourced with
TINCAN_USER_DATA_NO_MAIN=1, and its steps are called one by one with `aws`,
`uname`, `systemctl` and the instance-metadata helper replaced by stubs that
record their arguments. MEDIA_NODE_BIN is a debug `tincan-media-node`, run on
127.0.0.1 for the STUN probe. Prints one line per test and a last line
`infra-user-data: N passed, M failed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from suite_runner import run_tests

REPO = Path(__file__).resolve().parents[2]
SCRIPT = (REPO / "infra/lib/media-node-user-data.sh").read_text()
NODE_BIN = Path(sys.argv[1]) if len(sys.argv) > 1 else None

SUBSTITUTIONS = {
    "AWS::Region": "eu-west-1",
    "AWS::StackName": "tincan-test",
    "MediaNodeArtifactBucket": "my-bucket",
    "MediaNodeArtifactKey": "tincan-media-node",
    # Replaced per test by s3_serves(); any 64 hex digits render the script.
    "MediaNodeArtifactSha256": "0" * 64,
    "TurnSecret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:TurnSecret-abc",
    "SfuControlSecret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:SfuControlSecret-abc",
    "MediaNodesTable": "tincan-test-MediaNodesTable",
    "MediaNodeLogGroup": "/tincan/tincan-test/media-node",
    "TurnTlsDomain": "turn.example.com",
    "TurnTlsCertificateSecret": "tincan/turn-tls",
    "RelayPortMin": "49152",
    "RelayPortMax": "65535",
    "DrainGraceSeconds": "600",
    "SfuSlots": "3",
    "RoomMax": "100",
}


def render(script: str) -> str:
    """What Fn::Sub makes of the script: `${Name}` replaced, `${!x}` -> `${x}`."""
    def sub(m):
        name = m.group(1)
        if name.startswith("!"):
            return "${%s}" % name[1:]
        if name not in SUBSTITUTIONS:
            raise AssertionError(f"user data substitutes unknown ${{{name}}}")
        return SUBSTITUTIONS[name]
    return re.sub(r"\$\{([^}]+)\}", sub, script)


def heredoc(script: str, tag: str) -> str:
    m = re.search(r"<<'%s'\n(.*?)\n%s\n" % (tag, tag), script, re.S)
    if not m:
        raise AssertionError(f"no <<'{tag}' here-document in the user data")
    return m.group(1) + "\n"


class Sandbox:
    """A temp dir with stub commands and the rendered script."""

    def __init__(self, machine: str = "x86_64", imds: dict | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="tincan-user-data-"))
        self.bin = self.dir / "bin"
        self.bin.mkdir()
        self.calls = self.dir / "calls.log"
        self.calls.touch()
        self.console = self.dir / "console.log"
        stub = '#!/bin/bash\necho "%s $*" >> %s\n' % ("{name}", self.calls)
        for name in ("aws", "systemctl"):
            self._write(self.bin / name, stub.replace("{name}", name))
        self._write(self.bin / "uname", f"#!/bin/bash\necho {machine}\n")
        lines = ["#!/bin/bash", 'case "$1" in']
        for path, value in (imds or {}).items():
            lines.append(f"  {path}) echo '{value}' ;;")
        lines += ["  *) exit 22 ;;", "esac"]
        self.imds = self.dir / "imds"
        self._write(self.imds, "\n".join(lines) + "\n")
        self.lib = self.dir / "lib"
        self.lib.mkdir()
        self._write(self.lib / "stun-probe", heredoc(SCRIPT, "PROBE"))
        self.script = self.dir / "user-data.sh"
        self.script.write_text(render(SCRIPT))

    @staticmethod
    def _write(path: Path, text: str):
        path.write_text(text)
        path.chmod(0o755)

    def run(self, snippet: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Sources the script without running main, points it at the stubs,
        then runs `snippet`."""
        prelude = (
            f"source {self.script}\n"
            f"IMDS={self.imds}\nLIB={self.lib}\nSTATE={self.dir / 'state'}\n"
            "INSTANCE_ID=i-0123456789abcdef0\nFAIL_FLUSH_SECS=0\n"
            f"TLS_DIR={self.dir / 'tls'}\nSERVICE_GROUP=$(id -gn)\n"
        )
        env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}", TINCAN_USER_DATA_NO_MAIN="1")
        return subprocess.run(
            ["bash", "-c", prelude + snippet], capture_output=True, text=True, timeout=timeout, env=env
        )

    def signals(self) -> list[str]:
        return re.findall(r"--status (\w+)", self.calls.read_text())

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def fail(message: str):
    raise AssertionError(message)


def expect_failure(done: subprocess.CompletedProcess, box: Sandbox, *phrases: str):
    if done.returncode == 0:
        fail(f"the step succeeded; stderr: {done.stderr}")
    for phrase in phrases:
        if phrase not in done.stderr:
            fail(f"stderr lacks {phrase!r}:\n{done.stderr}")
    if "tincan-media-node setup: FAILED:" not in done.stderr:
        fail(f"no 'tincan-media-node setup: FAILED:' line:\n{done.stderr}")
    if box.signals() != ["FAILURE"]:
        fail(f"signals sent {box.signals()}, want exactly one FAILURE; calls:\n{box.calls.read_text()}")
    call = box.calls.read_text()
    for part in ("cloudformation signal-resource", "--stack-name tincan-test",
                 "--logical-resource-id MediaNodeGroup", "--unique-id i-0123456789abcdef0"):
        if part not in call:
            fail(f"the FAILURE signal lacks {part!r}: {call}")


def elf(machine: int) -> bytes:
    """A 64-bit little-endian ELF header for `machine` (62 x86_64, 183 aarch64)."""
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HH", 2, machine)
    return header + bytes(64 - len(header))


def with_box(machine="x86_64", imds=None):
    def wrap(test):
        def run():
            box = Sandbox(machine, imds)
            try:
                test(box)
            finally:
                box.close()
        run.__name__ = test.__name__
        return run
    return wrap


# ------------------------------------------------------------------- tests


@with_box(machine="aarch64")
def test_x86_binary_on_graviton_fails_and_says_how_to_build(box):
    (box.dir / "node").write_bytes(elf(62))
    done = box.run(f"check_binary {box.dir / 'node'}")
    expect_failure(done, box, "built for x86_64 but this instance is aarch64", "--arm64",
                   "s3://my-bucket/tincan-media-node")


@with_box(machine="x86_64")
def test_arm_binary_on_x86_fails_and_says_how_to_build(box):
    (box.dir / "node").write_bytes(elf(183))
    done = box.run(f"check_binary {box.dir / 'node'}")
    expect_failure(done, box, "built for aarch64 but this instance is x86_64", "--x86-64")


@with_box()
def test_artifact_that_is_not_an_executable_fails(box):
    (box.dir / "node").write_text("<Error><Code>AccessDenied</Code></Error>\n")
    done = box.run(f"check_binary {box.dir / 'node'}")
    expect_failure(done, box, "is not a Linux executable")


@with_box()
def test_empty_artifact_fails(box):
    (box.dir / "node").write_bytes(b"")
    done = box.run(f"check_binary {box.dir / 'node'}")
    expect_failure(done, box, "is empty")


def test_binary_that_does_not_start_fails():
    # /bin/false is an ELF of this machine that exits non-zero, as a binary
    # linked against a newer glibc than the AMI's would.
    machine = os.uname().machine
    box = Sandbox(machine)
    try:
        done = box.run("check_binary /bin/false")
        expect_failure(done, box, "does not start on this instance")
    finally:
        box.close()


def test_binary_of_this_machine_passes():
    if NODE_BIN is None:
        fail("no media-node binary given")
    box = Sandbox(os.uname().machine)
    try:
        done = box.run(f"check_binary {NODE_BIN} && echo passed")
        if done.returncode != 0 or "passed" not in done.stdout or box.signals():
            fail(f"a good binary was refused: {done.stderr}; signals {box.signals()}")
    finally:
        box.close()


@with_box()
def test_download_failure_names_the_bucket_and_key(box):
    (box.bin / "aws").write_text(
        '#!/bin/bash\necho "aws $*" >> %s\n[ "$1" = s3 ] && { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key not found" >&2; exit 1; }\nexit 0\n'
        % box.calls
    )
    done = box.run(f"BIN={box.dir / 'node'}; fetch_binary")
    expect_failure(done, box, "cannot download s3://my-bucket/tincan-media-node",
                   "MediaNodeArtifactBucket", "Key not found")


def s3_serves(box: Sandbox, content: bytes):
    """`aws s3 cp SRC DEST` writes `content` to DEST."""
    served = box.dir / "served"
    served.write_bytes(content)
    (box.bin / "aws").write_text(
        '#!/bin/bash\necho "aws $*" >> %s\n'
        'if [ "$1 $2" = "s3 cp" ]; then cp %s "${@: -1}"; fi\nexit 0\n' % (box.calls, served)
    )


@with_box()
def test_a_binary_whose_checksum_differs_never_runs_and_fails_the_boot(box):
    s3_serves(box, b"\x7fELF a build uploaded over the key")
    good = hashlib.sha256(b"the build the stack names").hexdigest()
    done = box.run(f"BIN={box.dir / 'node'}; ARTIFACT_SHA256={good}; fetch_binary")
    actual = hashlib.sha256(b"\x7fELF a build uploaded over the key").hexdigest()
    expect_failure(done, box, f"has SHA-256 {actual}", f"MediaNodeArtifactSha256 is {good}",
                   "s3://my-bucket/tincan-media-node")
    if (box.dir / "node").exists() or (box.dir / "node.download").exists():
        fail("the mismatched download was left where it could run")


@with_box()
def test_a_binary_with_the_named_checksum_is_installed(box):
    content = b"\x7fELF the build the stack names"
    s3_serves(box, content)
    done = box.run(f"BIN={box.dir / 'node'}; ARTIFACT_SHA256={hashlib.sha256(content).hexdigest()}; "
                   "fetch_binary && echo installed")
    if done.returncode != 0 or "installed" not in done.stdout or box.signals():
        fail(f"fetch_binary: {done.stderr}; signals {box.signals()}")
    node = box.dir / "node"
    if node.read_bytes() != content or not os.access(node, os.X_OK):
        fail("the binary is not installed as downloaded, executable")


def test_the_checksum_is_the_parameter_and_checked_before_anything_runs():
    if "ARTIFACT_SHA256='${MediaNodeArtifactSha256}'" not in SCRIPT:
        fail("the user data does not take the checksum from MediaNodeArtifactSha256")
    main = SCRIPT[SCRIPT.index("\nmain() {"):]
    if not main.index("fetch_binary") < main.index('check_binary "$BIN"'):
        fail("the binary runs (check_binary starts it) before its checksum is verified")


@with_box(imds={"meta-data/local-ipv4": "10.0.1.5"})
def test_private_subnet_without_public_ip_fails_and_says_why(box):
    done = box.run("public_ipv4")
    expect_failure(done, box, "no public IPv4 address", "public subnets")


@with_box(imds={"meta-data/public-ipv4": "203.0.113.7"})
def test_public_ip_is_read(box):
    done = box.run('public_ipv4 && echo "ip=$PUBLIC_IP"')
    if done.returncode != 0 or "ip=203.0.113.7" not in done.stdout or box.signals():
        fail(f"public_ipv4: {done.stdout} {done.stderr}; signals {box.signals()}")


@with_box()
def test_any_failing_step_fails_loudly_with_its_line(box):
    done = box.run("false\necho unreachable")
    expect_failure(done, box, "exited with status 1", '"false"')
    if "unreachable" in done.stdout:
        fail("the script went on after a failing step")


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    fail("no free port")


class LiveNode:
    """tincan-media-node on loopback with TURN over UDP, TCP and TLS (a
    self-signed certificate for turn.test, trusted through SSL_CERT_FILE)."""

    def __init__(self, box: Sandbox, metrics_port: int = 0):
        if NODE_BIN is None:
            fail("no media-node binary given")
        self.port, self.tls_port = free_port(), free_port()
        cert, key = box.dir / "cert.pem", box.dir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=turn.test",
             "-addext", "subjectAltName=DNS:turn.test", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )
        self.cert = cert
        env = dict(
            os.environ,
            TINCAN_TURN_ADDR=f"127.0.0.1:{self.port}",
            TINCAN_TURN_TLS_ADDR=f"127.0.0.1:{self.tls_port}",
            TINCAN_TURN_TLS_CERT=str(cert),
            TINCAN_TURN_TLS_KEY=str(key),
            TINCAN_TURN_SECRET="0123456789abcdef0123456789abcdef",
            TINCAN_SFU_CONTROL_SECRET="fedcba9876543210fedcba9876543210",
            TINCAN_METRICS_ADDR=f"127.0.0.1:{metrics_port}",
            TINCAN_SFU_CONTROL_ADDR="127.0.0.1:0",
            TINCAN_SFU_UDP_PORT="0",
            TINCAN_LOG_JSON="true",
            RUST_LOG="warn",
        )
        self.proc = subprocess.Popen([str(NODE_BIN)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_stun_probe_gates_success_on_a_live_turn_listener():
    box = Sandbox()
    node = LiveNode(box)
    try:
        done = box.run(
            f"export SSL_CERT_FILE={node.cert}; TURN_PORT={node.port}; TLS_PORT={node.tls_port}; TLS_NAME=turn.test; "
            "STUN_WAIT_SECS=20; wait_for_stun 127.0.0.1 && signal SUCCESS",
            timeout=90,
        )
        if done.returncode != 0:
            fail(f"wait_for_stun failed against a live node: {done.stderr}")
        for port, transport in ((node.port, "udp"), (node.port, "tcp"), (node.tls_port, "tls")):
            if f"STUN binding answered on 127.0.0.1:{port}/{transport}" not in done.stderr:
                fail(f"no {transport} answer reported: {done.stderr}")
        if box.signals() != ["SUCCESS"]:
            fail(f"signals {box.signals()}")
    finally:
        node.stop()
        box.close()


def test_a_certificate_for_another_name_fails_and_says_so():
    box = Sandbox()
    node = LiveNode(box)
    try:
        done = box.run(
            f"export SSL_CERT_FILE={node.cert}; TURN_PORT={node.port}; TLS_PORT={node.tls_port}; "
            "TLS_NAME=turn.example.com; STUN_WAIT_SECS=20; wait_for_stun 127.0.0.1",
            timeout=90,
        )
        expect_failure(done, box, f"no STUN answer over TLS on port {node.tls_port} for turn.example.com",
                       "Hostname mismatch", "TurnTlsCertificateSecret")
    finally:
        node.stop()
        box.close()


@with_box()
def test_no_stun_answer_fails_and_says_what_to_check(box):
    port = free_port()  # nothing listens there
    start = time.monotonic()
    done = box.run(f"TURN_PORT={port}; STUN_WAIT_SECS=2; wait_for_stun 127.0.0.1", timeout=60)
    expect_failure(done, box, f"no STUN answer on 127.0.0.1:{port}/udp", "internet gateway", "security group")
    if time.monotonic() - start > 30:
        fail("the probe did not respect its time limit")


def published(calls: str) -> dict:
    """MetricName -> value of the one put-metric-data call in `calls`."""
    puts = [c for c in calls.splitlines() if "put-metric-data" in c]
    if len(puts) != 1:
        fail(f"want one put-metric-data call per run, got {len(puts)}: {calls}")
    if "--namespace Tincan/MediaNode" not in puts[0]:
        fail(f"published to the wrong namespace: {puts[0]}")
    items = re.findall(r"MetricName=(\w+),Unit=(\w+),Value=(-?\d+),Dimensions=\[\{Name=AutoScalingGroupName,Value=([\w-]+)\}\]", puts[0])
    if not items or any(group != "tincan-test-media-nodes" for *_, group in items):
        fail(f"published for the wrong group: {puts[0]}")
    return {name: int(value) for name, _, value, _ in items}


def publisher(box: Sandbox, setup: str = "") -> tuple[Path, dict]:
    """Installs publish-load; returns it and the environment to run it in."""
    done = box.run(setup + "install_load_publisher")
    if done.returncode != 0:
        fail(f"install_load_publisher: {done.stderr}")
    return box.lib / "publish-load", dict(os.environ, PATH=f"{box.bin}:{os.environ['PATH']}")


def stub_metrics(box: Sandbox) -> Path:
    """`curl` prints the returned file, as the node's /metrics would."""
    metrics = box.dir / "metrics.txt"
    (box.bin / "curl").write_text(f"#!/bin/bash\ncat {metrics}\n")
    (box.bin / "curl").chmod(0o755)
    return metrics


def run_publisher(box: Sandbox, script: Path, env: dict) -> tuple[dict, list[str]]:
    """One run: what it published, and the protection flags it set."""
    box.calls.write_text("")
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=30, env=env)
    if done.returncode != 0:
        fail(f"publish-load: {done.stderr}")
    calls = box.calls.read_text()
    flags = []
    for call in (c for c in calls.splitlines() if "set-instance-protection" in c):
        if "--auto-scaling-group-name tincan-test-media-nodes" not in call or "--instance-ids i-0123456789abcdef0" not in call:
            fail(f"protection set on the wrong group or instance: {call}")
        flags.append(call.split()[-1])
    return published(calls), flags


@with_box(imds={"meta-data/instance-id": "i-0123456789abcdef0"})
def test_load_publisher_sends_the_load_its_parts_and_counter_increases(box):
    script, env = publisher(box)
    metrics = stub_metrics(box)
    sent = []
    for allocations, sfu, expired, bad, forwarded, dropped in (
        (7, 0, 1, 2, 0, 0), (9, 12, 4, 6, 5000, 3), (2, 1, 0, 1, 40, 0),
    ):
        metrics.write_text(
            "# TYPE tincan_node_load gauge\n"
            f"tincan_node_load {allocations + sfu}\n"
            f"tincan_turn_allocations {allocations}\n"
            f'tincan_turn_auth_failures_total{{reason="expired"}} {expired}\n'
            f'tincan_turn_auth_failures_total{{reason="bad_integrity"}} {bad}\n'
            "tincan_turn_allocations_total 99\n"
            f"tincan_sfu_participants {sfu}\n"
            f"tincan_sfu_packets_forwarded_total {forwarded}\n"
            f"tincan_sfu_packets_dropped_total {dropped}\n"
            "tincan_sfu_packets_muted_total 77\n"
        )
        got, _ = run_publisher(box, script, env)
        if "CertificateDaysLeft" in got:
            fail("a node without TLS published certificate days")
        sent.append(tuple(got[k] for k in ("Load", "TurnAllocations", "SfuParticipants", "TurnAuthFailures",
                                           "SfuPacketsForwarded", "SfuPacketsDropped")))
    # Counters: 3 auth failures at first; 10 - 3 = 7 more; then the node
    # restarted (1 < 10) and the count starts over.
    want = [(7, 7, 0, 3, 0, 0), (21, 9, 12, 7, 5000, 3), (3, 2, 1, 1, 40, 0)]
    if sent != want:
        fail(f"published {sent}, want {want}")


@with_box(imds={"meta-data/instance-id": "i-0123456789abcdef0"})
def test_protection_follows_the_load_and_a_node_with_only_sfu_participants_stays_protected(box):
    script, env = publisher(box)
    metrics = stub_metrics(box)
    changes = []
    # (TURN allocations, SFU participants): idle, TURN only, both, SFU only
    # (group calls, no relay at all), idle, SFU only.
    for allocations, sfu in ((0, 0), (3, 0), (5, 4), (0, 6), (0, 0), (0, 2)):
        metrics.write_text(
            f"tincan_node_load {allocations + sfu}\ntincan_turn_allocations {allocations}\ntincan_sfu_participants {sfu}\n"
        )
        got, flags = run_publisher(box, script, env)
        if got["Load"] != allocations + sfu:
            fail(f"published load {got['Load']} for {allocations} allocations and {sfu} SFU participants")
        changes += [((allocations, sfu), f) for f in flags]
    # Calls only when the state changes; SFU participants alone keep the node
    # protected (no call between (5, 4) and (0, 6)).
    want = [((0, 0), "--no-protected-from-scale-in"), ((3, 0), "--protected-from-scale-in"),
            ((0, 0), "--no-protected-from-scale-in"), ((0, 2), "--protected-from-scale-in")]
    if changes != want:
        fail(f"protection changes {changes}, want {want}")


def test_publisher_reads_the_real_node_s_metrics():
    """Against a running tincan-media-node's own /metrics (not a stub): the
    figure the script reads is one the binary serves, and an idle node is
    left unprotected."""
    box = Sandbox(imds={"meta-data/instance-id": "i-0123456789abcdef0"})
    metrics_port = free_port()
    node = LiveNode(box, metrics_port=metrics_port)
    try:
        script, env = publisher(box, f"METRICS_URL=http://127.0.0.1:{metrics_port}/metrics; ")
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", metrics_port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    fail("the node's metrics listener never came up")
                time.sleep(0.2)
        got, flags = run_publisher(box, script, env)
        if (got.get("Load"), got.get("TurnAllocations"), got.get("SfuParticipants")) != (0, 0, 0):
            fail(f"an idle node published {got}")
        if flags != ["--no-protected-from-scale-in"]:
            fail(f"an idle node's protection: {flags}")
    finally:
        node.stop()
        box.close()


@with_box(imds={"meta-data/instance-id": "i-0123456789abcdef0"})
def test_days_to_certificate_expiry_are_published_with_tls(box):
    tls = box.dir / "tls"
    tls.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=turn.test",
         "-keyout", str(tls / "private-key.pem"), "-out", str(tls / "certificate.pem")],
        check=True, capture_output=True, timeout=60,
    )
    script, env = publisher(box)
    stub_metrics(box).write_text("tincan_node_load 0\n")
    got, _ = run_publisher(box, script, env)
    if got.get("CertificateDaysLeft") not in (29, 30):
        fail(f"a 30-day certificate has {got.get('CertificateDaysLeft')} days left")


def secret_stub(box, answer: str, status: int = 0):
    """`aws secretsmanager get-secret-value` prints `answer` (and exits `status`)."""
    answer_file = box.dir / "secret.txt"
    answer_file.write_text(answer)
    (box.bin / "aws").write_text(
        '#!/bin/bash\necho "aws $*" >> %s\n'
        'if [ "$1" = secretsmanager ]; then cat %s; exit %d; fi\nexit 0\n' % (box.calls, answer_file, status)
    )


PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


@with_box()
def test_tls_certificate_is_installed_for_the_service_user_only(box):
    secret_stub(box, json.dumps({"certificate": PEM_CERT, "privateKey": PEM_KEY}))
    done = box.run("install_tls_certificate && echo installed")
    if done.returncode != 0 or "installed" not in done.stdout or box.signals():
        fail(f"install_tls_certificate: {done.stderr}")
    if "--secret-id tincan/turn-tls" not in box.calls.read_text():
        fail(f"read the wrong secret: {box.calls.read_text()}")
    tls = box.dir / "tls"
    cert, key = tls / "certificate.pem", tls / "private-key.pem"
    if cert.read_text() != PEM_CERT + "\n" or key.read_text() != PEM_KEY:
        fail("the PEM files differ from the secret")
    for path in (tls, cert, key):
        mode = path.stat().st_mode & 0o777
        if mode & 0o007:
            fail(f"{path.name} is readable by others ({oct(mode)})")
    if (key.stat().st_mode & 0o777) != 0o640:
        fail(f"the key's mode is {oct(key.stat().st_mode & 0o777)}, want 0640 (root and the service group)")


@with_box()
def test_tls_secret_that_is_not_the_documented_json_fails(box):
    secret_stub(box, "-----BEGIN CERTIFICATE-----\n")
    done = box.run("install_tls_certificate")
    expect_failure(done, box, "the TLS certificate secret tincan/turn-tls", '"certificate" and "privateKey"')


@with_box()
def test_tls_secret_without_a_pem_key_fails(box):
    secret_stub(box, json.dumps({"certificate": PEM_CERT, "privateKey": "hunter2"}))
    done = box.run("install_tls_certificate")
    expect_failure(done, box, 'its "privateKey" is not a PEM private key')
    if "hunter2" in done.stderr:
        fail("the key leaked into the console output")


@with_box()
def test_unreadable_tls_secret_fails(box):
    secret_stub(box, "An error occurred (AccessDeniedException)", status=255)
    done = box.run("install_tls_certificate")
    expect_failure(done, box, "cannot read the TLS certificate secret tincan/turn-tls", "AccessDeniedException")


def test_drain_watch_starts_before_anything_can_fail():
    """A node that fails after boot must not hold every termination of the
    group for the lifecycle hook's whole timeout."""
    main = SCRIPT[SCRIPT.index("\nmain() {"):]
    drain = main.index("systemctl enable --now tincan-drain-watch.service")
    for later in ("fetch_binary", "check_binary", "public_ipv4", "secretsmanager get-secret-value", "wait_for_stun"):
        if main.index(later) < drain:
            fail(f"{later} runs before the drain watcher starts")
    if main.index("wait_for_stun") > main.index("signal SUCCESS"):
        fail("SUCCESS is signalled before the STUN check")


# ------------------------------------------------------------------ runner


def main() -> int:
    return run_tests(globals(), "infra-user-data")


if __name__ == "__main__":
    sys.exit(main())
