"""Accept-backlog probe in a real gunicorn (sync workers, several processes), more clients than workers.

Ground truth from outside chokepoint: ``ss -ltn`` (the kernel's Recv-Q / Send-Q of the
listening socket) and the number of connections the test itself opened.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chokepoint.instrument import signals
from devservices import free_port

HARNESS = """
    # Imported by the gunicorn config, i.e. in the master before it forks its workers.
    import json, os, threading, time
    from chokepoint.instrument.probes import install_all
    from tests.instrument.probes.points import Metrics

    metrics = Metrics()
    probes = install_all(metrics.meter, enabled={"accept_backlog"})
    OUT = os.environ["SNAPSHOTS"]

    def sample_forever():
        names = ("chokepoint.server.accept_backlog", "chokepoint.server.accept_backlog.max", "chokepoint.server.accept_rate")
        while True:
            got = metrics.collect()
            row = {"pid": os.getpid(), "t": time.time()}
            row.update({n: got[n][0].value for n in names if got.get(n)})
            with open(OUT, "a") as f:
                f.write(json.dumps(row) + "\\n")
            time.sleep(0.2)

    def post_fork(server, worker):
        threading.Thread(target=sample_forever, daemon=True).start()
"""

APP = """
    import time

    def app(environ, start_response):
        time.sleep(float(environ["QUERY_STRING"] or 0))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
"""


def _ss_recv_send_q(port: int) -> tuple[int, int]:
    out = subprocess.run([shutil.which("ss") or "ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout.split()
    return int(out[1]), int(out[2])  # State Recv-Q Send-Q ...


def _get(port: int, sleep_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET /?{sleep_s} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def test_backlog_matches_ss_and_one_process_reports_it(tmp_path: Path):
    (tmp_path / "probe_harness.py").write_text(textwrap.dedent(HARNESS))
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "conf.py").write_text("from probe_harness import post_fork\nbacklog = 64\n")
    snapshots = tmp_path / "snapshots.jsonl"
    port, repo = free_port(), Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "conf.py", "-k", "sync", "-w", "3", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{repo}", "PATH": "/usr/bin:/bin", "SNAPSHOTS": str(snapshots), "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (snapshots.exists() and len({json.loads(x)["pid"] for x in snapshots.read_text().splitlines()}) == 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode() if proc.poll() is not None else "no snapshots"
            time.sleep(0.1)
        with ThreadPoolExecutor(10) as clients:
            busy = [clients.submit(_get, port, 4.0) for _ in range(3)]  # every worker busy for 4 s
            time.sleep(1.0)
            queued = [clients.submit(_get, port, 0.0) for _ in range(7)]  # 7 connections the workers cannot accept yet
            time.sleep(1.0)
            t0 = time.time()
            seen_by_ss = _ss_recv_send_q(port)
            time.sleep(1.0)
            t1 = time.time()
            assert all(f.result().endswith(b"ok") for f in busy + queued)
        time.sleep(1.5)  # a few more collections: every worker publishes its accepts
        rows = [json.loads(x) for x in snapshots.read_text().splitlines()]
    finally:
        proc.terminate()
        proc.wait(10)

    assert seen_by_ss == (7, 64)
    during = [r for r in rows if t0 - 0.5 <= r["t"] <= t1 and signals.SERVER_ACCEPT_BACKLOG in r]
    assert during and {r[signals.SERVER_ACCEPT_BACKLOG] for r in during} == {7}  # what ss saw
    assert {r[signals.SERVER_ACCEPT_BACKLOG_MAX] for r in during} == {64}
    reporting = {r["pid"] for r in rows if signals.SERVER_ACCEPT_BACKLOG in r}
    assert len(reporting) == 1  # one process reports for the whole server
    rated = [r for r in rows if signals.SERVER_ACCEPT_RATE in r]
    accepted = sum(r[signals.SERVER_ACCEPT_RATE] * (b["t"] - a["t"]) for a, b, r in zip(rated, rated[1:], rated[1:], strict=False))
    assert abs(accepted - 10) <= 1.5, accepted  # the test opened 10 connections
