"""A local stand-in for the Datadog agent's trace intake, for the ``ddtrace`` variant of the
overhead benchmark: it accepts what ``ddtrace`` sends and counts it, so a run can check that
ddtrace really exported (a tracer that exports nothing looks cheap).

Usage::

    with DdSink() as sink:                       # listens on 127.0.0.1:<free port>
        env["DD_TRACE_AGENT_URL"] = sink.url
        ...
        sink.counts()    # {"payloads": 12, "traces": 480, "spans": 3360}

Answers ``GET /info`` (the endpoints a tracer may use) and ``PUT``/``POST`` to
``/v0.4/traces`` / ``/v0.5/traces`` with 200 and an empty ``rate_by_service`` (ddtrace keeps
its own sampling).  Payloads are msgpack: v0.4 is a list of traces (lists of span maps),
v0.5 a ``[string table, traces]`` pair; spans are counted from the decoded payload, traces
from the payload (or the ``X-Datadog-Trace-Count`` header when it cannot be decoded).
Anything else (telemetry, stats, remote config) is answered 200 and counted by path.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack

INFO = {"version": "bench-sink", "endpoints": ["/v0.4/traces", "/v0.5/traces"], "client_drop_p0s": False, "feature_flags": []}


def count_payload(path: str, body: bytes) -> tuple[int, int] | None:
    """``(traces, spans)`` in one trace payload, or ``None`` if it does not decode."""
    try:
        payload = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:
        return None
    if path.startswith("/v0.5/") and isinstance(payload, list) and len(payload) == 2:
        payload = payload[1]
    if not isinstance(payload, list):
        return None
    return len(payload), sum(len(trace) for trace in payload if isinstance(trace, list))


class DdSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"payloads": 0, "traces": 0, "spans": 0, "undecoded": 0}
        self.other_paths: dict[str, int] = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(INFO if self.path.startswith("/info") else {})

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                if path in ("/v0.4/traces", "/v0.5/traces"):
                    counted = count_payload(path, body)
                    with sink._lock:
                        sink._counts["payloads"] += 1
                        if counted is None:
                            sink._counts["undecoded"] += 1
                            sink._counts["traces"] += int(self.headers.get("X-Datadog-Trace-Count") or 0)
                        else:
                            sink._counts["traces"] += counted[0]
                            sink._counts["spans"] += counted[1]
                    self._answer({"rate_by_service": {}})
                    return
                with sink._lock:
                    sink.other_paths[path] = sink.other_paths.get(path, 0) + 1
                self._answer({})

            do_POST = do_PUT

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="dd-sink", daemon=True)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __enter__(self) -> DdSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
