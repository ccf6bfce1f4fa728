"""What the tests with a real OpenTelemetry Collector in front of chokepoint collectors share.

    otelcol = build_otelcol()                           # scripts/provision-otelcol.sh, cached
    gateway = Process([str(otelcol), "--config", cfg], env, tmp / "otelcol.log")
    a = Chokepoint("a", tmp, {"CHOKEPOINT_KAFKA_INGEST": ...})   # its own process, so it can be SIGKILLed
    traffic = Traffic("http://127.0.0.1:4318", services)          # the ground truth: requests sent per service
    traffic.round(); a.spans("kafka"); a.requests_by_service(); findings_of(a.api)

Each request is a 300 ms SERVER span on /orders with a 280 ms HTTP CLIENT child to
``DEPENDENCY``, so every service has an ``external_dependency_slow`` finding.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from scripts.devservices import free_port
from tests.integration.collector_probe import metric_samples, post_traces, server_spans

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CHOKEPOINT_CACHE") or Path.home() / ".cache" / "chokepoint")
OTELCOL_CONFIGS = REPO / "scripts" / "otelcol"
DEPENDENCY = "payments.example"
REQUESTS = 20  # requests per batch (2 spans each), one batch per service per round
WINDOW_S = 900


def build_otelcol() -> Path:
    """The ``otelcol-chokepoint`` binary, built (or found built) by scripts/provision-otelcol.sh; fails the test if it cannot."""
    proc = subprocess.run([str(REPO / "scripts" / "provision-otelcol.sh")], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        pytest.fail(f"the OpenTelemetry Collector could not be built: {proc.stderr.strip()[-800:]}", pytrace=False)
    return CACHE / "bin" / "otelcol-chokepoint"


class Process:
    """A child process with its output in a log file (quoted when something fails)."""

    def __init__(self, argv: list[str], env: dict, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, n: int = 2000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Chokepoint(Process):
    """``chokepoint serve --no-dashboard`` as its own process; ``env`` adds to its ports, SQLite file and bucket size."""

    def __init__(self, name: str, tmp: Path, env: dict, bucket_s: float = 2.0) -> None:
        self.name = name
        self.api = f"http://127.0.0.1:{(api_port := free_port())}"
        self.otlp_grpc = f"127.0.0.1:{(grpc_port := free_port())}"
        self.sqlite = tmp / f"{name}.sqlite"
        self.env = {
            "CHOKEPOINT_OTLP_GRPC_PORT": str(grpc_port),
            "CHOKEPOINT_OTLP_HTTP_PORT": str(free_port()),
            "CHOKEPOINT_API_PORT": str(api_port),
            "CHOKEPOINT_SQLITE_PATH": str(self.sqlite),
            "CHOKEPOINT_BUCKET_SECONDS": str(bucket_s),
            "CHOKEPOINT_ANALYZE_S": "1",
            **env,
        }
        self.tmp = tmp
        super().__init__([sys.executable, "-m", "chokepoint.collector.cli", "serve", "--no-dashboard"], self.env, tmp / f"{name}.log")

    def restart(self) -> None:
        """Start again on the same ports and SQLite file (after :meth:`kill`)."""
        self._log.close()
        super().__init__([sys.executable, "-m", "chokepoint.collector.cli", "serve", "--no-dashboard"], self.env, self.tmp / f"{self.name}.log")

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.api}/api/v1/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def spans(self, protocol: str) -> int:
        """``chokepoint_ingest_spans_total{protocol=...}``."""
        samples = metric_samples(self.api)
        return int(sum(v for (name, labels), v in samples.items() if name == "chokepoint_ingest_spans_total" and ("protocol", protocol) in labels))

    def requests_by_service(self) -> dict[str, int]:
        rows = requests.get(f"{self.api}/api/v1/endpoints", params={"window": WINDOW_S}, timeout=10).json()["endpoints"]
        out: dict[str, int] = {}
        for row in rows:
            out[row["service"]] = out.get(row["service"], 0) + int(row["count"])
        return out


def findings_of(api: str) -> set[tuple[str, str, str]]:
    body = requests.get(f"{api}/api/v1/bottlenecks", params={"window": 120}, timeout=10).json()
    return {(f["kind"], f["service"], f["target"]) for f in body["findings"]}


def slow_dependency_requests(service: str, n: int, first_trace_id: int) -> bytes:
    """``n`` requests of ``service``: a 300 ms SERVER span on /orders whose HTTP CLIENT child takes 280 ms."""
    request = ExportTraceServiceRequest.FromString(server_spans(service, "/orders", n, first_trace_id=first_trace_id, duration_ms=lambda i: 300.0))
    scope = request.resource_spans[0].scope_spans[0]
    for i, server in enumerate(list(scope.spans)):
        client = scope.spans.add(name="GET", trace_id=server.trace_id, span_id=(n + i + 1).to_bytes(8, "big"), parent_span_id=server.span_id, kind=3)
        client.start_time_unix_nano, client.end_time_unix_nano = server.start_time_unix_nano + 10_000_000, server.start_time_unix_nano + 290_000_000
        client.attributes.add(key="server.address").value.string_value = DEPENDENCY
        client.attributes.add(key="http.request.method").value.string_value = "GET"
        client.attributes.add(key="http.response.status_code").value.int_value = 200
    return request.SerializeToString()


class Traffic:
    """OTLP sent to the OpenTelemetry Collector, requests counted per service (the ground truth)."""

    def __init__(self, otlp_http: str, services: list[str]) -> None:
        self.otlp_http = otlp_http
        self.services = services
        self.sent = dict.fromkeys(services, 0)  # requests (each 2 spans)
        self.next_trace = 1
        self.session = requests.Session()

    def round(self, retry_s: float = 0.0) -> None:
        """One batch per service; a refused connection is sent again for up to ``retry_s`` (a Collector reloading)."""
        for svc in self.services:
            body = slow_dependency_requests(svc, REQUESTS, self.next_trace)
            deadline = time.monotonic() + retry_s
            while True:
                try:
                    resp = post_traces(self.otlp_http, body, session=self.session)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert resp.status_code == 200, resp.text
            self.next_trace += REQUESTS
            self.sent[svc] += REQUESTS

    def spans(self) -> int:
        return 2 * sum(self.sent.values())


def accepts(otlp_http: str) -> bool:
    """The OpenTelemetry Collector's OTLP/HTTP receiver answers."""
    try:
        return post_traces(otlp_http, b"", timeout_s=2).status_code == 200
    except requests.RequestException:
        return False
