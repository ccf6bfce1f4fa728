"""Run a Python web app as a real instrumented subprocess, for the instrument's integration tests.

Usage::

    with Downstream() as downstream, InstrumentedApp(APP_SOURCE, tmp_path, env) as app:
        requests.get(app.url("/items/1"))
        downstream.requests   # [(path, headers)] the app's outbound calls carried

``InstrumentedApp`` writes the source to ``app.py`` and runs
``chokepoint-instrument python app.py PORT`` (or plain ``opentelemetry-instrument`` with
``launcher="opentelemetry-instrument"``, or another ``command`` such as gunicorn), waits
until ``GET /health`` answers, and on exit
stops it with SIGTERM and keeps its stderr in ``.stderr`` for assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devservices import free_port

BIN = Path(sys.executable).parent


class InstrumentedApp:
    def __init__(
        self,
        source: str,
        workdir: Path,
        env: dict,
        launcher: str | None = "chokepoint-instrument",
        port: int | None = None,
        command: list[str] | None = None,
        start_timeout_s: float = 60.0,
    ):
        self.port = port or free_port()
        self.path = Path(workdir) / "app.py"
        self.path.write_text(source)
        self.env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1", **env}
        self.launcher = launcher
        self.command = command  # what the launcher runs; default: python app.py PORT
        self.process: subprocess.Popen | None = None
        self.start_timeout_s = start_timeout_s
        self.stderr = ""
        self.stdout = ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> InstrumentedApp:
        launcher = [str(BIN / self.launcher)] if self.launcher else []  # launcher=None: the app instruments itself
        cmd = [*launcher, *(self.command or [sys.executable, str(self.path), str(self.port)])]
        self.process = subprocess.Popen(cmd, cwd=self.path.parent, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.process.poll() is not None:
                _out, err = self.process.communicate()
                raise AssertionError(f"app exited with {self.process.returncode}:\n{err[-4000:]}")
            try:
                with urllib.request.urlopen(self.url("/health"), timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"app did not answer /health within {self.start_timeout_s:.0f} s:\n{self.stderr[-4000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.stdout, self.stderr = self.process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.stdout, self.stderr = self.process.communicate()
        elif self.process is not None and not self.stderr:
            self.stdout, self.stderr = self.process.communicate()

    def __exit__(self, *exc) -> None:
        self.stop()


class Downstream:
    """A local HTTP dependency that records each request's path and headers."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                recorded.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Downstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
