"""Login latency: `POST /auth/login` against a tincan-bench-server process
(the local stack's HTTP API, embedded account store), one request at a time
on one keep-alive connection, after one registration. Dominated by argon2id,
by design."""

import http.client
import json
import statistics
import time
from pathlib import Path

from . import servers


def measure(root: Path, bins: Path, count: int) -> dict:
    server = servers.start("tincan", root, bins)
    try:
        host = server.url.removeprefix("ws://")
        conn = http.client.HTTPConnection(host, timeout=30)

        def post(path: str, body: dict) -> tuple[int, float]:
            t0 = time.perf_counter()
            conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            return resp.status, (time.perf_counter() - t0) * 1000

        creds = {"username": "bench-user", "password": "correct horse battery staple"}
        status, register_ms = post("/auth/register", {**creds, "displayName": "Bench"})
        if status != 201:
            return {"error": f"register answered {status}"}
        times, failures = [], 0
        for _ in range(count):
            status, ms = post("/auth/login", creds)
            if status == 200:
                times.append(ms)
            else:
                failures += 1
        times.sort()
        pick = lambda q: times[min(len(times) - 1, int(len(times) * q))] if times else None
        return {
            "count": count, "failures": failures, "register_ms": register_ms,
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0),
            "mean_ms": statistics.fmean(times) if times else None,
        }
    finally:
        server.stop()
