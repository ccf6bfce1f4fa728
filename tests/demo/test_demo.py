"""examples/demo.py's pieces without services: its reading of the load generator's progress line, flags, status output."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import sys
from pathlib import Path

import httpx
import pytest
from shop.load import SWITCH_MIX, run_load

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
    assert demo.parse_args(["--rate", "7"]).rate == 7.0
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
