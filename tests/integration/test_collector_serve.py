"""`chokepoint serve` as a real subprocess: one log line per listener, ingest works, SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from chokepoint.collector import catalog
from devservices import free_port

CHOKEPOINT = Path(sys.executable).with_name("chokepoint")


def start_serve(tmp_path: Path, *extra: str, env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    ports = {"grpc": free_port(), "http": free_port(), "api": free_port()}
    argv = [str(CHOKEPOINT), "serve", "--otlp-grpc-port", str(ports["grpc"]), "--otlp-http-port", str(ports["http"]), "--api-port", str(ports["api"])]
    argv += ["--sqlite-path", str(tmp_path / "serve.sqlite"), *extra]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    return proc, ports


def wait_ready(proc: subprocess.Popen) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "ready" in line:
            return lines
    proc.kill()
    raise AssertionError("chokepoint serve did not become ready:\n" + "\n".join(lines))


def test_serve_foreground_listens_ingests_and_stops_on_sigterm(tmp_path):
    proc, ports = start_serve(tmp_path, "--no-dashboard", env={"CHOKEPOINT_TOKEN": "tok"})
    try:
        lines = wait_ready(proc)
        text = "\n".join(lines)
        assert f"OTLP/gRPC listening on 127.0.0.1:{ports['grpc']}" in text
        assert f"OTLP/HTTP listening on http://127.0.0.1:{ports['http']}" in text
        assert f"REST API and /metrics listening on http://127.0.0.1:{ports['api']}" in text
        api = f"http://127.0.0.1:{ports['api']}"
        assert requests.get(f"{api}/api/v1/health", timeout=5).status_code == 401
        auth = {"Authorization": "Bearer tok"}
        assert requests.get(f"{api}/api/v1/health", headers=auth, timeout=5).json()["status"] == "ok"
        resp = requests.post(
            f"http://127.0.0.1:{ports['http']}/v1/traces", data=b"\x0a\x02\x0a", headers={"Content-Type": "application/x-protobuf", **auth}, timeout=5
        )
        assert resp.status_code == 400
        metrics = requests.get(f"{api}/metrics", headers=auth, timeout=5).text
        assert f'{catalog.INGEST_REJECTED.sample_name}{{protocol="http",reason="malformed"}} 1.0' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping" in err
    assert (tmp_path / "serve.sqlite").exists()


def test_serve_also_serves_the_dashboard_reading_its_api(tmp_path):
    dashboard_port = free_port()
    proc, _ports = start_serve(tmp_path, "--dashboard-port", str(dashboard_port))
    try:
        text = "\n".join(wait_ready(proc))
        assert f"dashboard: http://127.0.0.1:{dashboard_port}" in text
        page = requests.get(f"http://127.0.0.1:{dashboard_port}/", timeout=10)
        assert page.status_code == 200 and "chokepoint" in page.text
        layout = requests.get(f"http://127.0.0.1:{dashboard_port}/_dash-layout", timeout=10)
        assert layout.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_serve_on_a_busy_port_exits_1_with_the_reason(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [str(CHOKEPOINT), "serve", "--no-dashboard", "--otlp-grpc-port", "0", "--otlp-http-port", "0", "--api-port", str(port), "--sqlite-path", "none"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
