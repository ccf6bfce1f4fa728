"""examples/demo.py: its pieces (progress-line parsing, flags, status output, the fallback backend) and a whole fallback run.

The full demo (PostgreSQL + Kafka) end to end is ``tests/integration/test_demo_story.py``;
here the demo runs as ``make demo`` does on a machine without PostgreSQL and Java
(``--fallback``: the shop on SQLite, no Kafka), as a real process tree stopped with SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from shop.load import SWITCH_MIX, run_load

from tests.integration.test_demo_story import Output, alive, assert_nothing_left, descendants, stop_for_sure

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("chokepoint_demo", REPO / "examples" / "demo.py")
demo = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = demo  # dataclasses resolve their annotations through sys.modules
_spec.loader.exec_module(demo)


def test_progress_regex_reads_the_real_load_generators_progress_line():
    lines: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})

    result = asyncio.run(run_load("http://shop.test", 40, 2.5, progress=lines.append, transport=httpx.MockTransport(answer), seed=1))
    assert result.errors == 0 and len(lines) >= 2
    parsed = [demo.PROGRESS_RE.search(line) for line in lines]
    assert all(parsed), lines
    assert 30 <= float(parsed[1]["rps"]) <= 50 and float(parsed[1]["p99"]) >= 0 and parsed[1]["errors"] == "0"


def test_switch_and_rate_defaults_and_bad_options():
    args = demo.parse_args([])
    assert (args.switch, args.rate, args.window, args.once) == ("slow_query", 10.0, 15.0, False)
    args = demo.parse_args(["--switch", "db_pool_saturation", "--once", "--story-seconds", "30"])
    assert (args.switch, args.rate, args.once, args.story_seconds) == ("db_pool_saturation", demo.DEFAULT_RATE_RPS, True, 30.0)
    assert demo.parse_args(["--rate", "7"]).rate == 7.0 and demo.parse_args(["--rate", "7", "--fallback"]).rate == 7.0
    assert demo.parse_args(["--fallback"]).rate == demo.SQLITE_RATE_RPS_BY_SWITCH["slow_query"] < demo.RATE_RPS_BY_SWITCH["slow_query"]
    assert demo.parse_args(["--fallback", "--switch", "n_plus_one"]).rate == demo.DEFAULT_RATE_RPS
    for bad in (["--switch", "slow_qeury"], ["--story-seconds", "1"], ["--rate", "0"]):
        with pytest.raises(SystemExit) as exc:
            demo.parse_args(bad)
        assert exc.value.code == 2
    assert set(SWITCH_MIX) >= {"slow_query", "db_pool_saturation"}


def test_free_ports_are_four_distinct_ports():
    ports = demo.choose_ports(free=True)
    assert set(ports) == set(demo.CONTRACT_PORTS) and len(set(ports.values())) == 4


def test_finding_label_shortens_long_targets():
    finding = {"kind": "slow_query", "service": "shop", "target": "SELECT " + "x, " * 40 + "FROM products", "score": 0.876, "severity": "critical"}
    label = demo.finding_label(finding)
    assert label.startswith("slow_query shop/SELECT x, ") and label.endswith("… (critical 0.88)")
    assert len(label) < 90 and demo.finding_label(None) == "none"
    assert demo.finding_label({"kind": "cacheable_reads", "service": "shop", "target": "SELECT 1", "score": 0.16}) == "cacheable_reads shop/SELECT 1 (0.16)"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_redraws_in_place_on_a_terminal_and_prints_lines_otherwise():
    tty = Terminal()
    line = demo.StatusLine(tty)
    line.show("[healthy 1s] rps 10 long line")
    line.show("[healthy 2s] rps 9")
    line.print("story 1 done")
    assert tty.getvalue().count("\n") == 1 and tty.getvalue().startswith("\r[healthy 1s]")
    assert "\r[healthy 2s] rps 9" + " " * len(" long line") in tty.getvalue()
    plain = io.StringIO()
    line = demo.StatusLine(plain)
    line.show("a")
    line.show("b")
    line.print("c")
    assert plain.getvalue() == "a\nb\nc\n"


def test_summary_table_shows_each_phase():
    phases = [
        demo.PhaseSummary("healthy", "slow_query", False, sent=150, p50_ms=12.0, p99_ms=60.0, top_finding=None),
        demo.PhaseSummary("bottleneck", "slow_query", True, sent=150, errors=2, p50_ms=250.0, p99_ms=700.4, top_finding="slow_query"),
    ]
    lines = demo.format_summary(phases).splitlines()
    assert lines[1].split() == ["healthy", "off", "150", "0", "12", "60", "none"]
    assert lines[2].split() == ["bottleneck", "on", "150", "2", "250", "700", "slow_query"]


# --------------------------------------------------------------------------- fallback: SQLite, no Kafka


def test_fallback_flag_and_kafka_switches():
    assert demo.parse_args(["--fallback"]).fallback is True and demo.parse_args([]).fallback is False
    with pytest.raises(SystemExit) as exc:
        demo.parse_args(["--fallback", "--switch", "consumer_lag"])
    assert exc.value.code == 2
    assert demo.Backend("sqlite:///x", None, ["SQLite", "no Kafka"]).label == "[fallback: SQLite, no Kafka]"
    assert demo.Backend("postgresql://u@h/db", None, ["no Kafka"]).services == "PostgreSQL"
    full = demo.Backend("postgresql://u@h/db", "127.0.0.1:9092")
    assert full.label == "" and full.services == "Kafka, PostgreSQL"


def test_forced_fallback_backend_is_a_sqlite_file_removed_at_the_end(capsys):
    with contextlib.ExitStack() as running:
        backend = demo.start_backend(running, fallback=True)
        sqlite_dir = Path(backend.db_url.removeprefix("sqlite:///")).parent
        assert sqlite_dir.is_dir() and backend.kafka_bootstrap is None and backend.label == "[fallback: SQLite, no Kafka]"
    assert not sqlite_dir.exists()
    assert "forced (--fallback)" in capsys.readouterr().out


def test_a_service_that_cannot_start_is_named_and_the_demo_falls_back(monkeypatch, capsys):
    """Kafka's jars for a version nobody provisioned: the real 'not available' path of devservices; PostgreSQL starts."""
    monkeypatch.setenv("CHOKEPOINT_KAFKA_VERSION", "0.0.0-not-provisioned")
    with contextlib.ExitStack() as running:
        backend = demo.start_backend(running, fallback=False)
        assert backend.db_url.startswith("postgresql://") and backend.kafka_bootstrap is None
        assert backend.label == "[fallback: no Kafka]"
    out = capsys.readouterr().out
    assert "  PostgreSQL   ready  postgresql://" in out
    line = next(line for line in out.splitlines() if "Kafka not available" in line)
    assert "Kafka 0.0.0-not-provisioned jars not provisioned" in line and "falling back to no Kafka" in line and "scripts/provision.sh kafka" in line


FALLBACK_STORY_S = 45
FALLBACK_SWITCH = demo.DEFAULT_SWITCH


def test_fallback_demo_runs_the_story_on_sqlite_without_kafka_and_stops_cleanly_on_sigint(tmp_path, artifacts_dir):
    summary_path = tmp_path / "summary.json"
    argv = [sys.executable, str(REPO / "examples" / "demo.py"), "--fallback", "--story-seconds", str(FALLBACK_STORY_S), "--window", "10", "--free-ports"]
    argv += ["--log-dir", str(tmp_path / "logs"), "--summary-json", str(summary_path)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True
    )
    out = Output(proc)
    tree: set[int] = set()
    ports: list[int] = []
    try:
        rate = float(out.wait_for(r"^chokepoint demo \[fallback: SQLite, no Kafka\] — story: .* (\d+(?:\.\d+)?) rps;", 30, proc)[1])
        assert rate == demo.SQLITE_RATE_RPS_BY_SWITCH[FALLBACK_SWITCH]
        sqlite_url = out.wait_for(r"SQLite +ready +(sqlite:///\S+)", 30, proc)[1]
        dashboard = out.wait_for(r"Open the dashboard: (http://127\.0\.0\.1:\d+/) .*\[fallback: SQLite, no Kafka\]$", 120, proc)[1]
        assert not [line for line in out.lines if re.match(r" +(PostgreSQL|Kafka) +ready", line)]
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", " ".join(line for line in out.lines if "ready" in line or "dashboard" in line))]
        page = httpx.get(dashboard, timeout=10)
        assert page.status_code == 200 and "chokepoint" in page.text
        out.wait_for(rf"^\[fallback: SQLite, no Kafka\] \[healthy +\d+s/15s\] {FALLBACK_SWITCH}=off \d+ rps p99 \d+ ms \| top: ", 60, proc)

        out.wait_for(r"^story 1 done:", FALLBACK_STORY_S + 60, proc)
        story_1_done = out.seen
        deadline = time.monotonic() + 10
        while not summary_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        summary = json.loads(summary_path.read_text())
        (artifacts_dir / "demo-fallback-story-summary.json").write_text(json.dumps(summary, indent=2))
        assert summary["mode"] == {"database": "sqlite", "kafka": False} and summary["fallback"] == "[fallback: SQLite, no Kafka]"
        phases = {p["phase"]: p for p in summary["phases"]}
        assert list(phases) == ["healthy", "bottleneck", "fixed"]
        assert [phases[name]["switch_state"] for name in phases] == [{"shop": False}, {"shop": True}, {"shop": False}]
        assert all(p["sent"] >= 0.9 * rate * FALLBACK_STORY_S / 3 and p["errors"] == 0 for p in phases.values()), summary
        # every search scans 200 000 rows in SQLite (~100 ms) instead of an index range: the search median goes up
        search = {name: p["routes"]["search"] for name, p in phases.items()}
        assert search["bottleneck"]["count"] >= 10 and search["healthy"]["count"] >= 10, search
        assert search["bottleneck"]["p50_ms"] > 2 * search["healthy"]["p50_ms"], search
        assert phases["bottleneck"]["top_finding"] == FALLBACK_SWITCH, summary
        assert phases["bottleneck"]["peak_scores"][FALLBACK_SWITCH] >= 0.4, summary  # warning or critical

        out.wait_for(r"^\[fallback: SQLite, no Kafka\] \[healthy +\d+s/15s\]", 30, proc, after=story_1_done)  # the second story is under way
        tree = descendants(proc.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") for pid in tree if alive(pid)]
        assert len(tree) >= 3, commands  # the sidecar, payment and the shop
        assert not [c for c in commands if "java" in c or "postgres" in c or "shop.fulfilment" in c], commands
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, "\n".join(out.lines[-30:])
    finally:
        if proc.poll() is None:  # a failed assertion above
            tree = stop_for_sure(proc, 60)
    assert_nothing_left(tree, ports)
    assert out.lines[-2:] == ["stopping: demo shop, sidecar …", "demo stopped: nothing left running"]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).parent.exists()  # the SQLite file went with the demo
