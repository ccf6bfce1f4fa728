"""A stand-in for a remote HTTP API the zoo apps call (not instrumented; it is the world outside).

``python dependency.py PORT`` serves every path; behaviour is set at runtime with
``POST /_set?delay_ms=&fail=&hang_ms=&hang_every=`` and read with ``GET /_stats`` (calls, status
counts, its own handling times), so a test measures the dependency from the dependency's side.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

CONFIG = {"delay_ms": 0.0, "fail": 0.0, "hang_ms": 0.0, "hang_every": 0}
STATS = {"calls": 0, "errors": 0, "times_ms": []}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if url.path == "/_set":
            for key, values in parse_qs(url.query).items():
                CONFIG[key] = float(values[0])
            return self._send(200, CONFIG)
        self.do_GET()

    def do_GET(self):
        if self.path.startswith("/_stats"):
            with LOCK:
                return self._send(200, {"calls": STATS["calls"], "errors": STATS["errors"], "times_ms": STATS["times_ms"][-20000:]})
        started = time.monotonic()
        with LOCK:
            STATS["calls"] += 1
            n = STATS["calls"]
            fail = int(n * CONFIG["fail"]) != int((n - 1) * CONFIG["fail"])  # that share of calls, evenly spread
        delay = CONFIG["delay_ms"]
        if CONFIG["hang_every"] and n % int(CONFIG["hang_every"]) == 0:
            delay = CONFIG["hang_ms"]
        time.sleep(delay / 1000)
        status = 503 if fail else 200
        with LOCK:
            STATS["errors"] += fail
            STATS["times_ms"].append((time.monotonic() - started) * 1000)
        self._send(status, {"ok": not fail, "n": n})


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
