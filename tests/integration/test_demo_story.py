"""``make demo``'s script (``examples/demo.py``) end to end, as a user runs it, then stopped with Ctrl-C.

One run with a short story (``--story-seconds 45``: 15 s per phase, ``--window 10``) on
free ports: its own PostgreSQL and Kafka, ``chokepoint serve`` with the dashboard, the
shop's three processes under ``chokepoint-instrument``, and load.  While it runs the
dashboard URL it printed must answer 200 and the status line must refresh; after the
first story the per-phase summary (``--summary-json``) must show the switch on only in
the ``bottleneck`` phase, latency up while it was on, and the sidecar's top finding in
that phase's second half naming the injected switch.  Then SIGINT (what Ctrl-C sends)
during the second story: the script must exit 0 and leave no process of its tree and
no listening port behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.py"
SWITCH = "slow_query"
STORY_S = 45


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (by walking /proc parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_for_sure(proc: subprocess.Popen, timeout_s: float) -> set[int]:
    """After a failed assertion: stop the demo the clean way (SIGINT), then for sure; its process tree."""
    tree = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *tree]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return tree


def assert_nothing_left(tree: set[int], ports) -> None:
    """No process of the demo's tree alive and none of its ports listening."""
    time.sleep(0.5)
    left = sorted(pid for pid in tree if alive(pid))
    assert left == [], [Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in left]
    assert [port for port in ports if listening(port)] == []


class Output:
    """The demo's stdout, collected by a thread; wait for a line matching a pattern."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.seen = 0
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float, proc: subprocess.Popen, after: int = 0) -> re.Match:
        """The first line from index ``after`` on matching ``pattern``; ``self.seen`` is the index after it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for i, line in enumerate(list(self.lines)[after:], start=after):
                match = re.search(pattern, line)
                if match:
                    self.seen = i + 1
                    return match
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n" + "\n".join(self.lines[-40:])
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s:.0f}s:\n" + "\n".join(self.lines[-40:]))


def test_demo_runs_the_story_shows_the_dashboard_and_stops_cleanly_on_sigint(tmp_path, artifacts_dir):
    summary_path = tmp_path / "summary.json"
    argv = [sys.executable, str(DEMO), "--switch", SWITCH, "--story-seconds", str(STORY_S), "--window", "10", "--free-ports"]
    argv += ["--log-dir", str(tmp_path / "logs"), "--summary-json", str(summary_path)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True
    )
    out = Output(proc)
    tree: set[int] = set()
    ports: list[int] = []
    try:
        dashboard = out.wait_for(r"Open the dashboard: (http://127\.0\.0\.1:\d+/)", 150, proc)[1]
        api = out.wait_for(r"sidecar +ready +API (http://127\.0\.0\.1:\d+)", 1, proc)[1]
        ports = [int(p) for p in re.findall(r":(\d+)", " ".join(line for line in out.lines if "ready" in line or "dashboard" in line))]
        page = httpx.get(dashboard, timeout=10)
        assert page.status_code == 200 and "chokepoint" in page.text
        assert httpx.get(dashboard.rstrip("/") + "/_dash-layout", timeout=10).status_code == 200
        out.wait_for(rf"^\[healthy +\d+s/15s\] {SWITCH}=off \d+ rps p99 \d+ ms \| top: ", 60, proc)

        out.wait_for(r"^story 1 done:", STORY_S + 60, proc)
        story_1_done = out.seen
        deadline = time.monotonic() + 10
        while not summary_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        summary = json.loads(summary_path.read_text())
        (artifacts_dir / "demo-story-summary.json").write_text(json.dumps(summary, indent=2))
        phases = {p["phase"]: p for p in summary["phases"]}
        assert list(phases) == ["healthy", "bottleneck", "fixed"]
        # what the demo controls: the switch is on in the shop only during the bottleneck phase, load ran in every phase
        assert [phases[name]["switch_state"] for name in phases] == [{"shop": False}, {"shop": True}, {"shop": False}]
        assert all(p["sent"] >= 100 and p["errors"] == 0 for p in phases.values()), summary
        # a slow_query search is a sequential scan of 200 000 rows instead of an index range: every search is
        # slower (the median, per route: a phase's p99 over ~150 requests is one request, and a busy host moves it)
        search = {name: p["routes"]["search"] for name, p in phases.items()}
        assert search["bottleneck"]["count"] >= 30 and search["healthy"]["count"] >= 30, search
        assert search["bottleneck"]["p50_ms"] > 2 * search["healthy"]["p50_ms"], search
        # what the sidecar made of it: the injected bottleneck on top while it was switched on
        assert phases["bottleneck"]["top_finding"] == SWITCH, summary
        assert phases["bottleneck"]["peak_scores"][SWITCH] >= 0.4, summary  # warning or critical
        findings = httpx.get(f"{api}/api/v1/bottlenecks", params={"window": 10}, timeout=10).json()["findings"]
        assert isinstance(findings, list)

        out.wait_for(r"^\[healthy +\d+s/15s\]", 30, proc, after=story_1_done)  # the second story is under way
        tree = descendants(proc.pid)
        # Kafka, the sidecar and the shop's three processes (PostgreSQL's server detaches from pg_ctl: checked by its port below)
        assert len(tree) >= 5, tree
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, "\n".join(out.lines[-30:])
    finally:
        if proc.poll() is None:  # a failed assertion above
            tree = stop_for_sure(proc, 90)
    assert_nothing_left(tree, ports)
    assert out.lines[-1] == "demo stopped: nothing left running"
