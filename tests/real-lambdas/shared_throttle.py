"""Two http-api Lambda processes, as two containers of one function, each
on a Lambda Runtime API of its own (a minimal one here, so the test decides
which process handles each request), with one throttles table in moto and
one MongoDB: wrong passwords for one user from one address, alternating
between the two, are refused at the shared count
(TINCAN_LOGIN_FAILURES_PER_USER_ADDR, 10 by default), not at twice it.

Usage: shared_throttle.py HTTP_API_BINARY (MONGODB_URI, DYNAMODB_ENDPOINT,
TINCAN_THROTTLES_TABLE, TINCAN_JWT_SECRET from the environment).
"""

import json
import os
import queue
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BINARY = sys.argv[1]
LIMIT = 10
PREFIX = "/2018-06-01/runtime/invocation/"


class RuntimeApi:
    """One event at a time, handed to the process polling this API."""

    def __init__(self):
        self.events, self.replies = queue.Queue(), queue.Queue()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != PREFIX + "next":
                    return self.reply(404)
                request_id, event = api.events.get()
                self.reply(200, json.dumps(event).encode(), [
                    ("lambda-runtime-aws-request-id", request_id),
                    ("lambda-runtime-deadline-ms", "9999999999999"),
                    ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:http-api"),
                    ("content-type", "application/json")])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                self.reply(202)
                if self.path.endswith("/response"):
                    api.replies.put(json.loads(body))
                elif self.path.endswith("/error"):
                    api.replies.put({"statusCode": 599, "body": body.decode()})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_port}",
                   AWS_LAMBDA_FUNCTION_NAME="http-api", AWS_LAMBDA_FUNCTION_VERSION="1",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024", RUST_LOG="warn", TINCAN_HASH_WORKERS="1",
                   TINCAN_TURN_SECRET="shared-throttle-turn-secret")
        self.process = subprocess.Popen([BINARY], env=env)

    def http(self, method, path, body):
        """One HTTP API (payload 2.0) request: (status, body)."""
        event = {
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "000000000000", "apiId": "local", "domainName": "127.0.0.1",
                "domainPrefix": "local", "requestId": os.urandom(8).hex(), "routeKey": "$default",
                "stage": "$default", "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.7", "userAgent": "shared-throttle"},
            },
            "body": json.dumps(body), "isBase64Encoded": False,
        }
        self.events.put((os.urandom(8).hex(), event))
        reply = self.replies.get(timeout=60)
        return reply["statusCode"], json.loads(reply.get("body") or "null")

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.server.shutdown()


a, b = RuntimeApi(), RuntimeApi()
try:
    name = "thr" + os.urandom(4).hex()
    status, _ = a.http("POST", "/auth/register", {"username": name, "password": "pw-" + name, "displayName": name})
    assert status == 201, status
    statuses = []
    for i in range(2 * LIMIT):
        status, body = (a if i % 2 == 0 else b).http(
            "POST", "/auth/login", {"username": name, "password": "wrong"})
        statuses.append(status)
        if status == 429:
            assert body["error"]["code"] == "rate-limited", body
            break
    assert statuses[:LIMIT] == [401] * LIMIT, statuses
    assert statuses[LIMIT:] == [429], f"refused at guess {len(statuses)}, not {LIMIT + 1}: {statuses}"
    print(f"real-lambdas: {LIMIT} wrong passwords spread over two http-api processes, then 429 (a shared count)")
finally:
    a.stop()
    b.stop()
