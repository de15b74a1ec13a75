#!/usr/bin/env python3
"""Cold-start bench of the Lambda binaries on a local Lambda Runtime API.

A tiny emulator of the Runtime API (loopback only) starts each function's
`bootstrap` itself, as Lambda does, and times:

- init_ms: exec -> the function's first `GET .../runtime/invocation/next`
  (tracing, configuration, SDK clients: everything `main` does before
  `run`);
- first_invoke_ms: the first event handed out -> its response posted. It
  includes the first TLS handshake: DynamoDB is moto behind a TLS-terminating
  proxy whose self-signed CA the function trusts through SSL_CERT_FILE;
- warm_invoke_ms: a second event, same process.

Each function is started `--runs` times (a fresh process each); the figures
are medians. With `--compare-dir` (another build of the same functions,
e.g. at opt-level 3), each run starts one of each, in turn, and the table
ends with the ratios of the two builds. `--mongodb-uri` gives the functions
a MongoDB (call history; the http-api Lambda's accounts), as in AWS. The same server answers the API Gateway Management API
(`POST/DELETE /{stage}/@connections/{id}`: 200), so pushes cost a loopback
round trip. Prints a table, then one JSON line per function:
{"name", "binary_bytes", "init_ms", "first_invoke_ms", "warm_invoke_ms", "runs"}.

Usage: lambda_runtime_emulator.py --bin-dir DIR --moto-port PORT [--runs N]
       [--label L] [--compare-dir DIR2 --compare-label L2] [--mongodb-uri URI]
where DIR holds <function>/bootstrap (cargo-lambda's layout).
"""

import argparse
import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import queue
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "cold-start-secret-cold-start-secret-xx"
TABLE = "cold-start"
STAGE = "local"
FUNCTIONS = ["ws-connect", "ws-default", "ws-disconnect", "http-api"]
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def now_ms():
    return time.monotonic_ns() / 1e6


# ------------------------------------------------------------------ TLS


def make_certs(directory):
    """A CA and a leaf for 127.0.0.1/localhost; returns (ca.pem, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    end = start + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("tincan bench CA"))
        .issuer_name(name("tincan bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = [os.path.join(directory, n) for n in ("ca.pem", "leaf.pem", "leaf.key")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


def start_tls_proxy(cert, key, upstream_port):
    """TLS on a loopback port, plain TCP to moto. Returns the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    ready = queue.Queue()

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        for w in (client_writer, up_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        ready.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    return ready.get(timeout=10)


# ------------------------------------------------------- Runtime API


class Runtime:
    """One function process at a time: its events and the times it polls
    and answers."""

    def __init__(self):
        self.events = queue.Queue()
        self.lock = threading.Lock()
        self.first_poll = None
        self.handed = {}  # request id -> time the event left
        self.answered = queue.Queue()  # (request id, time, status, body)

    def reset(self):
        self.__init__()


RUNTIME = Runtime()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # One segment per answer: no Nagle/delayed-ACK stalls in the figures.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/2018-06-01/runtime/invocation/next":
            rt = RUNTIME
            with rt.lock:
                if rt.first_poll is None:
                    rt.first_poll = now_ms()
            try:
                request_id, payload = rt.events.get(timeout=60)
            except queue.Empty:
                self.reply(500)
                return
            deadline = int(time.time() * 1000) + 10_000
            with rt.lock:
                rt.handed[request_id] = now_ms()
            self.reply(
                200,
                payload,
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                },
            )
            return
        self.reply(404)

    def do_POST(self):
        body = self.body()
        parts = self.path.split("/")
        # /2018-06-01/runtime/invocation/{id}/response | /error
        if self.path.startswith("/2018-06-01/runtime/invocation/") and len(parts) == 6:
            RUNTIME.answered.put((parts[4], now_ms(), parts[5], body))
            self.reply(202, b"{}", {"Content-Type": "application/json"})
            return
        if self.path.startswith("/2018-06-01/runtime/init/error"):
            RUNTIME.answered.put(("init", now_ms(), "init-error", body))
            self.reply(202, b"{}")
            return
        if "/@connections/" in self.path:
            self.reply(200)
            return
        self.reply(404)

    def do_DELETE(self):
        self.body()
        self.reply(200 if "/@connections/" in self.path else 404)


# --------------------------------------------------------------- events


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(user, name):
    now = int(time.time())
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"sub": user, "name": name, "iat": now, "exp": now + 900, "typ": "access"}).encode())
    signing = f"{header}.{claims}".encode()
    sig = b64url(hmac.new(SECRET.encode(), signing, hashlib.sha256).digest())
    return f"{header}.{claims}.{sig}"


def ws_event(fixture, connection, body=None, tok=""):
    path = os.path.join(REPO, "functions", "tests", "fixtures", fixture)
    text = open(path).read()
    text = (
        text.replace("CONNECTION", connection)
        .replace("TOKEN", tok)
        .replace("DOMAIN", "localhost")
        .replace("STAGE", STAGE)
    )
    event = json.loads(text)
    if body is not None:
        event["body"] = body
    return json.dumps(event).encode()


def http_event(path):
    return json.dumps(
        {
            "version": "2.0",
            "routeKey": f"GET {path}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"host": "localhost"},
            "requestContext": {
                "http": {
                    "method": "GET",
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": "bench",
                },
                "requestId": "r",
                "routeKey": f"GET {path}",
                "stage": "$default",
                "timeEpoch": 0,
            },
            "isBase64Encoded": False,
        }
    ).encode()


def events_for(function, run):
    """The two events (cold, warm) of one run of `function`."""
    tok = token("bench-user", "Bench")
    if function == "ws-connect":
        return [ws_event("connect.json", f"c{run}-{i}", tok=tok) for i in range(2)]
    if function == "ws-default":
        ping = json.dumps({"action": "ping"})
        return [ws_event("message.json", f"c{run}-0", body=ping) for _ in range(2)]
    if function == "ws-disconnect":
        return [ws_event("disconnect.json", f"c{run}-{i}") for i in range(2)]
    return [http_event("/me"), http_event("/me")]


# ------------------------------------------------------------------ run


def one_run(binary, function, run, env):
    """One fresh process of `binary` on a Runtime API server of its own: a
    server shared across runs let a killed process's last `next` poll,
    handled late, take the next run's event and lose it."""
    RUNTIME.reset()
    server = QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"127.0.0.1:{server.server_address[1]}"
    env = dict(env, AWS_LAMBDA_RUNTIME_API=api, TINCAN_WS_ENDPOINT=f"http://{api}/{STAGE}")
    started = now_ms()
    proc = subprocess.Popen(
        [binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(env["BENCH_LOG_DIR"], f"{function}-{run}.log"), "wb"),
    )
    try:
        for _ in range(1000):
            if RUNTIME.first_poll is not None or proc.poll() is not None:
                break
            time.sleep(0.001)
        if RUNTIME.first_poll is None:
            raise RuntimeError(f"{function} never polled (exit {proc.poll()})")
        init = RUNTIME.first_poll - started
        times, statuses = [], []
        for payload in events_for(function, run):
            request_id = str(uuid.uuid4())
            RUNTIME.events.put((request_id, payload))
            got_id, at, kind, body = RUNTIME.answered.get(timeout=20)
            if kind != "response":
                raise RuntimeError(f"{function}: {kind}: {body[:300]!r}")
            times.append(at - RUNTIME.handed[got_id])
            try:
                statuses.append(json.loads(body).get("statusCode"))
            except (ValueError, AttributeError):
                statuses.append(None)
        return init, times[0], times[1], statuses
    finally:
        proc.kill()
        proc.wait()
        server.shutdown()
        server.server_close()


class QuietServer(ThreadingHTTPServer):
    """The Runtime API server; a function killed at the end of its run
    resets its open connection, which is no error worth a traceback."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--moto-port", type=int, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--label", default="")
    parser.add_argument("--compare-dir", default="")
    parser.add_argument("--compare-label", default="compared")
    parser.add_argument("--mongodb-uri", default="")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="tincan-cold-")
    ca, cert, key = make_certs(work)
    tls_port = start_tls_proxy(cert, key, args.moto_port)

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SSL_CERT_FILE": ca,
        "RUST_LOG": "warn",
        "TINCAN_JWT_SECRET": SECRET,
        "TINCAN_TURN_SECRET": "turn",
        "TINCAN_TURN_URL": "127.0.0.1:3478",
        "TINCAN_CONNECTIONS_TABLE": TABLE,
        "DYNAMODB_ENDPOINT": f"https://localhost:{tls_port}",
        "TINCAN_DATA_DIR": os.path.join(work, "data"),
        "BENCH_LOG_DIR": work,
    }
    if args.mongodb_uri:
        env["MONGODB_URI"] = args.mongodb_uri
        env["TINCAN_MONGODB_DB"] = "cold-start"
    builds = [(args.label, args.bin_dir)]
    if args.compare_dir:
        builds.append((args.compare_label, args.compare_dir))
    rows = {label: [] for label, _ in builds}
    for function in FUNCTIONS:
        binaries = {label: os.path.join(d, function, "bootstrap") for label, d in builds}
        missing = [b for b in binaries.values() if not os.path.exists(b)]
        if missing:
            print(f"lambda-cold-start: no {missing[0]}", file=sys.stderr)
            continue
        samples = {label: ([], [], [], set()) for label, _ in builds}
        for run in range(args.runs):
            # In turn, so that both builds see the same machine.
            for b, (label, binary) in enumerate(binaries.items()):
                init, first, warm, answered = one_run(binary, function, f"{run}b{b}", env)
                inits, firsts, warms, statuses = samples[label]
                statuses.update(answered)
                inits.append(init)
                firsts.append(first)
                warms.append(warm)
        for label, binary in binaries.items():
            inits, firsts, warms, statuses = samples[label]
            rows[label].append(
                {
                    "name": function,
                    "binary_bytes": os.path.getsize(binary),
                    "init_ms": round(statistics.median(inits), 2),
                    "first_invoke_ms": round(statistics.median(firsts), 2),
                    "warm_invoke_ms": round(statistics.median(warms), 2),
                    "runs": args.runs,
                    "statuses": sorted(s for s in statuses if s is not None),
                }
            )
    for label, _ in builds:
        title = f" ({label})" if label else ""
        print(f"Lambda cold start{title}: medians of {args.runs} fresh processes")
        print(f"{'function':<14} {'binary MB':>10} {'init ms':>9} {'1st invoke ms':>14} {'warm ms':>8}")
        for r in rows[label]:
            print(
                f"{r['name']:<14} {r['binary_bytes'] / 1e6:>10.2f} {r['init_ms']:>9.1f} "
                f"{r['first_invoke_ms']:>14.1f} {r['warm_invoke_ms']:>8.1f}"
            )
    if args.compare_dir:
        ours, theirs = rows[args.label], rows[args.compare_label]
        print(f"ratio {args.label or 'deployed'} / {args.compare_label}")
        print(f"{'function':<14} {'size':>6} {'init':>6} {'1st invoke':>11} {'warm':>6}")
        for a, b in zip(ours, theirs):
            ratio = lambda k: a[k] / b[k] if b[k] else float("nan")
            print(
                f"{a['name']:<14} {ratio('binary_bytes'):>6.2f} {ratio('init_ms'):>6.2f} "
                f"{ratio('first_invoke_ms'):>11.2f} {ratio('warm_invoke_ms'):>6.2f}"
            )
    for label, _ in builds:
        for r in rows[label]:
            if label:
                r["label"] = label
            print(json.dumps(r))


if __name__ == "__main__":
    main()
