"""The OpenTelemetry Collector as ``bench/ingest.py``'s peer, and telemetrygen as a load.

Binaries (built by ``scripts/provision-otelcol.sh`` and ``scripts/provision-telemetrygen.sh``
into ``$CHOKEPOINT_CACHE/bin``, default ``~/.cache/chokepoint/bin``): ``otelcol-chokepoint``
(OpenTelemetry Collector v0.148, components in ``scripts/otelcol/builder-config.yaml``) and
``telemetrygen``.

The peer runs the job chokepoint does, spans to request metrics: OTLP receiver (gRPC and
HTTP) → ``spanmetrics`` connector (calls and duration histogram per service/span
name/kind/status) → ``prometheus`` exporter.  Its internal telemetry (Prometheus pull reader,
level ``normal``) serves ``otelcol_receiver_accepted_spans``, the count of spans it received,
read before and after each run.  Pinned to ``cpus`` with ``taskset`` like chokepoint.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(os.environ.get("CHOKEPOINT_CACHE", Path.home() / ".cache" / "chokepoint")) / "bin"
OTELCOL = BIN / "otelcol-chokepoint"
TELEMETRYGEN = BIN / "telemetrygen"

CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
        max_recv_msg_size_mib: 64
      http:
        endpoint: 127.0.0.1:{http}
connectors:
  spanmetrics: {{}}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{prom}
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {internal}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [spanmetrics]
    metrics:
      receivers: [spanmetrics]
      exporters: [prometheus]
"""


def missing() -> list[str]:
    """Binaries the peer needs that are not built (run the provision scripts)."""
    return [str(p) for p in (OTELCOL, TELEMETRYGEN) if not os.access(p, os.X_OK)]


def _sum_metric(url: str, prefix: str) -> float:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


class OtelCollector:
    """``otelcol-chokepoint`` on free loopback ports, pinned with ``taskset -c cpus``."""

    name = "otelcol"

    def __init__(self, ports: dict, cpus: str) -> None:
        self.ports = ports
        self._dir = tempfile.TemporaryDirectory(prefix="chokepoint-otelcol-")
        config = Path(self._dir.name) / "config.yaml"
        config.write_text(CONFIG.format(**ports))
        self.log = open(Path(self._dir.name) / "otelcol.log", "w+")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(["taskset", "-c", cpus, str(OTELCOL), "--config", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.ingested()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.log.seek(0)
                    raise RuntimeError(f"otelcol did not start: {self.log.read()[-800:]}") from None
                time.sleep(0.2)

    def target(self, transport: str) -> str:
        return f"127.0.0.1:{self.ports['grpc' if transport == 'grpc' else 'http']}"

    def ingested(self) -> float:
        # the counter is ``otelcol_receiver_accepted_spans`` up to some release, ``..._total`` after
        url = f"http://127.0.0.1:{self.ports['internal']}/metrics"
        return _sum_metric(url, "otelcol_receiver_accepted_spans{") + _sum_metric(url, "otelcol_receiver_accepted_spans_total{")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self._dir.cleanup()


_GENERATED = re.compile(r'traces generated.*"traces": (\d+)')


def run_telemetrygen(transport: str, target: str, seconds: float, workers: int, rate: float, cpus: str) -> dict:
    """Run telemetrygen (each trace = 1 parent + 1 child span); what it generated and failed.

    ``rate`` is traces per second per worker (0 = unthrottled).  The client's losses are what
    it generated minus what the collector received; ``failed_exports`` counts its log lines of
    failed exports (its SDK drops spans silently when its queue is full, so only the
    difference sees every loss).
    """
    argv = ["taskset", "-c", cpus, str(TELEMETRYGEN), "traces", "--otlp-insecure", "--otlp-endpoint", target]
    argv += ["--duration", f"{seconds}s", "--workers", str(workers), "--rate", str(rate), "--allow-export-failures"]
    if transport != "grpc":
        argv.append("--otlp-http")
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    traces = sum(int(m) for m in _GENERATED.findall(log))
    failed = sum(1 for line in log.splitlines() if ("error" in line.lower() or "fail" in line.lower()) and "grpc_log" not in line)
    return {"generated_spans": 2 * traces, "failed_exports": failed, "wall_s": wall, "exit": proc.returncode}
