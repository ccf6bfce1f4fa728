"""gunicorn probe in a real gthread worker process (probe installed in the master, as the agent does)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chokepoint.instrument import signals
from devservices import free_port

HARNESS = """
    # Imported by the gunicorn config, i.e. in the master before it forks its workers.
    import json
    from chokepoint.instrument.probes import install_all
    from tests.instrument.probes.points import Metrics

    metrics = Metrics()
    probes = install_all(metrics.meter, enabled={"gunicorn"})

    def snapshot():
        got = metrics.collect()
        return {name: [[dict(p.attributes), p.value] for p in points] for name, points in got.items() if name.startswith("chokepoint.worker_pool")}
"""

APP = """
    import json, time
    import probe_harness

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            time.sleep(1.5)
            body = b"slow"
        elif environ["PATH_INFO"] == "/slow-snapshot":
            time.sleep(1.0)  # others queue meanwhile; then report what the worker saw
            body = json.dumps(probe_harness.snapshot()).encode()
        else:
            body = json.dumps(probe_harness.snapshot()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
"""


def _get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _values(snapshot: dict, name: str) -> dict:
    return {attrs[signals.ATTR_POOL_NAME]: value for attrs, value in snapshot.get(name, []) if attrs[signals.ATTR_WORKER_POOL_KIND] == "gunicorn"}


def _start_gunicorn(tmp_path: Path, *worker_args: str) -> tuple[subprocess.Popen, int]:
    (tmp_path / "probe_harness.py").write_text(textwrap.dedent(HARNESS))
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "conf.py").write_text("import probe_harness\n")
    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "conf.py", *worker_args, "-w", "1", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{repo}", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"gunicorn did not start: {proc.stdout.read().decode()}") from None
            time.sleep(0.1)


def test_gthread_worker_busy_threads_and_processes(tmp_path: Path):
    proc, port = _start_gunicorn(tmp_path, "-k", "gthread", "--threads", "3")
    try:
        idle = json.loads(_get(f"http://127.0.0.1:{port}/metrics"))
        assert _values(idle, signals.WORKER_POOL_BUSY) == {"gunicorn": 1}  # the /metrics request itself
        assert _values(idle, signals.WORKER_POOL_MAX) == {"gunicorn": 3}
        assert _values(idle, signals.WORKER_POOL_PROCESSES) == {"gunicorn": 1}

        with ThreadPoolExecutor(2) as clients:
            slow = [clients.submit(_get, f"http://127.0.0.1:{port}/slow") for _ in range(2)]
            time.sleep(0.5)
            busy = json.loads(_get(f"http://127.0.0.1:{port}/metrics"))
            assert [f.result() for f in slow] == [b"slow", b"slow"]
        assert _values(busy, signals.WORKER_POOL_BUSY) == {"gunicorn": 3}
        assert _values(busy, signals.WORKER_POOL_QUEUED) == {"gunicorn": 0}
    finally:
        proc.terminate()
        proc.wait(10)


def test_sync_worker_reports_the_accept_backlog(tmp_path: Path):
    proc, port = _start_gunicorn(tmp_path, "-k", "sync")
    try:
        with ThreadPoolExecutor(3) as clients:
            snapshot = clients.submit(_get, f"http://127.0.0.1:{port}/slow-snapshot")
            time.sleep(0.3)  # the worker is inside /slow-snapshot now
            waiting = [clients.submit(_get, f"http://127.0.0.1:{port}/metrics") for _ in range(2)]
            seen = json.loads(snapshot.result())
            assert all(json.loads(f.result()) for f in waiting)
        assert _values(seen, signals.WORKER_POOL_BUSY) == {"gunicorn": 1}
        assert _values(seen, signals.WORKER_POOL_MAX) == {"gunicorn": 1}
        assert _values(seen, signals.WORKER_POOL_QUEUED) == {"gunicorn": 2}  # two connections not yet accepted
    finally:
        proc.terminate()
        proc.wait(10)
