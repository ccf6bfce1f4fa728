"""``chokepoint loadtest`` as a user runs it: a real Locust run against the instrumented demo shop.

The shop (payment + shop + fulfilment on real PostgreSQL and Kafka, each process under
``chokepoint-instrument``) runs with the ``slow_query`` switch on and exports to a real
collector (the ``collector`` fixture, 2 s buckets); ``chokepoint loadtest
examples/locustfile.py`` is the installed command, run as a subprocess, with the search-heavy
mix of ``shop.load.SWITCH_MIX["slow_query"]`` and users ramped past what the host's
PostgreSQL can scan.  The report it writes must name the injected bottleneck and the knee.  The error paths (unreachable target, invalid locustfile) need no shop.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from shop.launch import LaunchError, ShopStack
from shop.load import SWITCH_MIX

from devservices import free_port

REPO = Path(__file__).resolve().parents[2]
CHOKEPOINT = Path(sys.executable).with_name("chokepoint")
LOCUSTFILE = REPO / "examples" / "locustfile.py"
SWITCH = "slow_query"
FAST = {"bucket_seconds": 2.0, "analyze_interval_s": 1.0}


def loadtest(*args: str, env: dict | None = None, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHOKEPOINT), "loadtest", *args], capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("collector", [FAST], indirect=True)
def test_loadtest_against_the_shop_writes_a_report_naming_the_injected_bottleneck(collector, postgres, kafka, tmp_path, artifacts_dir):
    dbname = f"loadtest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http, "OTEL_METRIC_EXPORT_INTERVAL": "2000"}
    stack = ShopStack(
        f"postgresql://postgres@127.0.0.1:{postgres.port}/{dbname}",
        kafka.bootstrap,
        switches=SWITCH,
        topic=f"orders-{uuid.uuid4().hex[:8]}",
        wrapper=["chokepoint-instrument"],
        env=env,
        log_dir=tmp_path / "shop-logs",
    )
    try:
        stack.start()
    except LaunchError as exc:
        pytest.fail(str(exc), pytrace=False)
    out = tmp_path / "report"
    mix = ",".join(f"{route}={weight:g}" for route, weight in SWITCH_MIX[SWITCH].items())
    try:
        proc = loadtest(
            str(LOCUSTFILE),
            *("--users", "30", "--spawn-rate", "1.5", "--duration", "30", "--host", stack.shop_url, "--api", collector.api, "--output", str(out)),
            env={"SHOP_LOAD_MIX": mix},
        )
    finally:
        stack.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    (artifacts_dir / "loadtest-report.md").write_text(md)
    (artifacts_dir / "loadtest-report.html").write_text(page)
    # the progress line showed users, rps and the sidecar's top finding while Locust ran
    progress = [line for line in proc.stdout.splitlines() if line.startswith("[loadtest")]
    assert progress and "users 30" in proc.stdout and "top: " in progress[-1]
    # Locust really ran against the shop, and its numbers made it into the report
    history = (out / "locust_stats_history.csv").read_text().splitlines()
    assert len(history) > 20
    assert "| search |" in md and "| product |" in md
    # the injected bottleneck is the likely bottleneck of the run, with evidence and a fix
    likely = md.split("## Likely bottleneck", 1)[1].split("\n## ", 1)[0]
    assert f"(`{SWITCH}`) — shop / `SELECT products." in likely, md
    assert f"likely bottleneck: {SWITCH} shop/" in proc.stdout
    assert "**Fix:**" in md and "| evidence | value |" in md
    # the HTML page is self-contained: plotly inlined, three charts, the same finding
    assert "<script src=" not in page and "Plotly.newPlot" in page and page.count('class="plotly-graph-div"') == 3
    assert f"<td>{SWITCH}</td>" in page
    # 30 users ramped at 1.5/s send ~15 sequential-scan searches/s: more than two cores of PostgreSQL, so latency climbs
    knee = re.search(r"Latency started to climb at \*\*(\d+) s\*\* into the run, with \*\*(\d+) users\*\*", md)
    assert knee, md.split("## Knee point", 1)[1][:400]
    assert 0 < int(knee[1]) < 30 and 0 < int(knee[2]) <= 30
    assert "knee: " in page and "knee threshold" in page


@pytest.mark.parametrize("collector", [FAST], indirect=True)
def test_loadtest_against_an_unreachable_target_exits_1_with_one_line(collector, tmp_path):
    port = free_port()
    proc = loadtest(str(LOCUSTFILE), "--duration", "5", "--host", f"http://127.0.0.1:{port}", "--api", collector.api, "--output", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"chokepoint loadtest: target http://127.0.0.1:{port} is unreachable (ConnectionError)"
    assert not (tmp_path / "r").exists()


def test_loadtest_with_an_invalid_locustfile_exits_1_with_one_line(tmp_path):
    broken = tmp_path / "broken_locustfile.py"
    broken.write_text("from locust import HttpUser, task\n\nclass Shopper(HttpUser:\n    pass\n")
    proc = loadtest(str(broken), "--host", "http://127.0.0.1:1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"chokepoint loadtest: invalid locustfile {broken}: ") and "SyntaxError" in lines[0]

    no_users = tmp_path / "no_users.py"
    no_users.write_text("WAIT_S = 1\n")
    proc = loadtest(str(no_users), "--host", "http://127.0.0.1:1")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"chokepoint loadtest: invalid locustfile {no_users}: no Locust User class in it"


@pytest.mark.parametrize("collector", [FAST], indirect=True)
def test_ctrl_c_stops_locust_and_still_writes_the_report(collector, tmp_path):
    locustfile = tmp_path / "root_locustfile.py"
    locustfile.write_text(
        "from locust import HttpUser, constant, task\n\n"
        "class Visitor(HttpUser):\n    wait_time = constant(0.1)\n\n    @task\n    def root(self):\n        self.client.get('/')\n"
    )
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    out = tmp_path / "report"
    argv = [str(CHOKEPOINT), "loadtest", str(locustfile), "--users", "2", "--duration", "60", "--api", collector.api, "--output", str(out)]
    argv += ["--host", f"http://127.0.0.1:{target.server_address[1]}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "locust_stats_history.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(4)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        target.shutdown()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert stderr.strip() == "chokepoint loadtest: interrupted; the report covers the run up to Ctrl-C"
    md = (out / "report.md").read_text()
    assert "| duration | 60 s (interrupted) |" in md
    assert int(re.search(r"\| requests / failures \| (\d+) / 0 \|", md)[1]) > 0
    assert (out / "report.html").exists()
