"""Runs every bench side by side and writes docs/benchmarks.md with plots.

Started by tests/bench/report (which installs and builds what is needed);
see that script for the environment it reads. Each step prints a progress
line; the raw figures go to docs/benchmarks/results.json, from which
render.py writes the page (REPORT_RENDER_ONLY=1 re-renders without running).
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from . import login, render, servers

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "docs"
BINS = Path(os.environ.get("REPORT_BINS", ROOT / "target/release"))
QUICK = os.environ.get("REPORT_QUICK", "") not in ("", "0")

if QUICK:
    LATENCY_CLIENTS, LATENCY_PHASES = 200, "steady:1000:4,burst:5000:2"
    SWEEP, SWEEP_PHASE = [100, 500], "steady:500:3"
    TURN_CPU_STEPS = "50:20:50"
    TURN_SAT_STEPS = "50:20:50 50:5:200 150:5:200"
    LOGINS = 10
else:
    LATENCY_CLIENTS, LATENCY_PHASES = 1000, "steady:2000:15,burst:20000:3"
    SWEEP, SWEEP_PHASE = [100, 1000, 3000, 10000], "steady:1000:10"
    TURN_CPU_STEPS = "100:20:100 500:20:100"
    TURN_SAT_STEPS = "100:20:100 100:5:400 200:5:400 400:5:400 800:5:400"
    LOGINS = 40
KINDS = {"latency", "sweep", "turn", "lambda", "login"}
SKIP = set(os.environ.get("REPORT_SKIP", "").split(","))
# REPORT_ONLY=turn (a comma list): run only these steps and keep every other
# section's figures from the last run's results.json.
ONLY = set(os.environ.get("REPORT_ONLY", "").split(",")) - {""}
if ONLY:
    SKIP |= KINDS - ONLY

started = time.monotonic()
step_no = 0
STEPS_TOTAL = 0


def progress(msg: str) -> None:
    global step_no
    step_no += 1
    t = time.monotonic() - started
    print(f"[report {step_no}/{STEPS_TOTAL} {t // 60:02.0f}:{t % 60:02.0f}] {msg}", flush=True)


def sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return ""


def machine() -> dict:
    model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    relays = ROOT / "tests/bench/relays/node_modules"
    npm = {}
    for pkg in ("socket.io", "peer", "ws"):
        try:
            npm[pkg] = json.loads((relays / pkg / "package.json").read_text())["version"]
        except OSError:
            npm[pkg] = "?"
    return {
        "cores": os.cpu_count(),
        "cpu": model.group(1) if model else platform.processor(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "load_start": os.getloadavg(),
        "rustc": sh("rustc --version"),
        "node": sh("node --version"),
        "coturn": sh("dpkg-query -W -f='${Version}' coturn"),
        "npm": npm,
        "commit": sh(f"git -C {ROOT} rev-parse --short HEAD"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": QUICK,
        "complete": False,
    }


def relay_run(kind: str, clients: int, phases: str) -> dict:
    """One server started, loaded by the one load client, stopped."""
    server = servers.start(kind, ROOT, BINS)
    try:
        env = dict(os.environ, TINCAN_JWT_SECRET=servers.SECRET)
        cmd = [str(BINS / "tincan-relay-bench"), "--protocol", kind, "--url", server.url,
               "--clients", str(clients), "--phases", phases, "--server-pid", str(server.pid)]
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=sys.stderr,
                              text=True, timeout=600)
        lines = [json.loads(l) for l in done.stdout.splitlines() if l.startswith("{")]
        out = {"connected": None, "phases": {}, "exit": done.returncode}
        for line in lines:
            if line["event"] == "connected":
                out["connected"] = line
            elif line["event"] == "phase":
                out["phases"][line["phase"]] = line
        return out
    except subprocess.TimeoutExpired:
        return {"connected": None, "phases": {}, "exit": "timeout"}
    finally:
        server.stop()


def turn(steps: str) -> list:
    results = ROOT / "target/turn-results.txt"
    results.parent.mkdir(exist_ok=True)
    results.unlink(missing_ok=True)
    env = dict(os.environ, STEPS=steps, RESULTS=str(results),
               NODE_BIN=str(BINS / "tincan-media-node"))
    subprocess.run(["bash", str(ROOT / "tests/bench/turn-vs-coturn.sh")], env=env,
                   stdout=subprocess.DEVNULL, stderr=sys.stderr, timeout=900)
    keys = ["server", "clients", "sent", "recv", "pps", "loss_pct", "lost", "rtt_ms",
            "jitter_ms", "cpu_s", "cpu_us_per_pkt", "wall_s", "gap_ms", "server_drops",
            "rcvbuf_errors"]
    rows = []
    for line in results.read_text().splitlines() if results.exists() else []:
        row = dict(zip(keys, line.split()))
        rows.append({k: (v if k == "server" else float(v)) for k, v in row.items()})
    return rows


def lambdas() -> dict:
    script = ROOT / "tests/bench/lambda-cold-start.sh"
    limit = int(os.environ.get("REPORT_LAMBDA_TIMEOUT", "1800"))
    if not script.exists() or "binary_bytes" not in script.read_text():
        return {"functions": [], "note": "tests/bench/lambda-cold-start.sh does not print its "
                "figures as JSON lines (name, binary_bytes, init_ms, ...) in this checkout"}
    try:
        done = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=sys.stderr,
                              text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"functions": [], "note": f"did not finish in {limit} s"}
    functions = []
    for line in done.stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "name" in obj:
            functions.append(obj)
    note = "" if functions else f"no JSON lines from lambda-cold-start.sh (exit {done.returncode})"
    return {"functions": functions, "note": note}


def main() -> None:
    global STEPS_TOTAL
    json_path = OUT / "benchmarks/results.json"
    if os.environ.get("REPORT_RENDER_ONLY"):
        render.write(json.loads(json_path.read_text()), OUT)
        return
    # The short steps first, so a run cut short still covers every kind of figure.
    plan = []
    if "latency" not in SKIP:
        plan += [("latency", k, LATENCY_CLIENTS) for k in servers.KINDS]
    if "turn" not in SKIP:
        plan += [("turn-cpu", None, None)]
    if "login" not in SKIP:
        plan += [("login", None, None)]
    if "sweep" not in SKIP:
        plan += [("sweep", k, n) for n in SWEEP for k in servers.KINDS]
    if "turn" not in SKIP:
        plan += [("turn-saturation", None, None)]
    # Last: it may have a long release build to do first.
    if "lambda" not in SKIP:
        plan += [("lambda", None, None)]
    STEPS_TOTAL = len(plan) + 1
    fresh = {"machine": machine(), "latency": {}, "sweep": [], "turn_cpu": [],
               "turn_saturation": [], "lambda": {"functions": [], "note": "left out of this run (REPORT_SKIP=lambda); "
                          "`bash tests/bench/lambda-cold-start.sh` measures it on its own"},
               "login": None,
               "settings": {"latency_clients": LATENCY_CLIENTS, "latency_phases": LATENCY_PHASES,
                            "sweep_phase": SWEEP_PHASE, "turn_cpu_steps": TURN_CPU_STEPS,
                            "turn_saturation_steps": TURN_SAT_STEPS}}
    if ONLY and json_path.exists():
        # Keep the last full run, its machine facts included; say what was
        # run again, when and on which commit.
        results = json.loads(json_path.read_text())
        results["machine"]["rerun"] = {k: fresh["machine"][k] for k in ("date", "commit", "load_start")}
        results["machine"]["rerun"]["steps"] = sorted(ONLY)
        results["settings"].update({k: v for k, v in fresh["settings"].items() if k.startswith("turn_")}
                                   if "turn" in ONLY else {})
        complete_before = results["machine"].get("complete", True)
        results["machine"]["complete"] = False
    else:
        results, complete_before = fresh, True
    for what, kind, n in plan:
        if what == "latency":
            progress(f"latency: {servers.LABELS[kind]}, {n} clients, phases {LATENCY_PHASES}")
            results["latency"][kind] = relay_run(kind, n, LATENCY_PHASES)
        elif what == "sweep":
            progress(f"connections: {servers.LABELS[kind]}, {n} clients, phase {SWEEP_PHASE}")
            run = relay_run(kind, n, SWEEP_PHASE)
            results["sweep"].append({"kind": kind, "clients": n, **run})
        elif what == "turn-cpu":
            progress(f"TURN: CPU per relayed packet, ours vs coturn (steps {TURN_CPU_STEPS})")
            results["turn_cpu"] = turn(TURN_CPU_STEPS)
        elif what == "turn-saturation":
            progress(f"TURN: saturation ramp, ours vs coturn (steps {TURN_SAT_STEPS})")
            results["turn_saturation"] = turn(TURN_SAT_STEPS)
        elif what == "lambda":
            progress("Lambdas: binary size, cold init, first invoke (tests/bench/lambda-cold-start.sh)")
            results["lambda"] = lambdas()
        elif what == "login":
            progress(f"login latency: {LOGINS} logins against tincan-bench-server")
            results["login"] = login.measure(ROOT, BINS, LOGINS)
        # The page so far, so a run cut short still leaves one.
        save(results, json_path)
    progress("writing docs/benchmarks.md and docs/benchmarks/*.svg")
    results["machine"]["complete"] = complete_before
    save(results, json_path)
    print(f"report: wrote {OUT / 'benchmarks.md'} in {results['machine']['minutes']} min")


def save(results: dict, json_path: Path) -> None:
    minutes = round((time.monotonic() - started) / 60, 1)
    if "rerun" in results["machine"]:
        results["machine"]["rerun"].update(load_end=os.getloadavg(), minutes=minutes)
    else:
        results["machine"]["load_end"] = os.getloadavg()
        results["machine"]["minutes"] = minutes
    (OUT / "benchmarks").mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    render.write(results, OUT)


main()
