"""chokepoint.dashboards.loadtest without a real run: the knee, Locust's CSV, checks, findings bookkeeping, flags."""

from __future__ import annotations

import csv
import sys

import pytest

from chokepoint.collector.cli import build_parser
from chokepoint.dashboards.loadtest import (
    LoadtestError,
    LoadtestResult,
    Sample,
    _record_findings,
    check_api,
    check_locustfile,
    check_target,
    find_knee,
    read_history,
    run_problem,
)
from devservices import free_port

PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
HISTORY_COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILES, "Total Request Count", "Total Failure Count"]


def samples(p95s: list[float | None], users: int = 10, rps: float = 20.0) -> list[Sample]:
    return [Sample(float(i), users + i, rps if p is not None else 0.0, 0.0, p, p, p, 100 * i, 0) for i, p in enumerate(p95s)]


def test_flat_latency_has_no_knee():
    assert find_knee(samples([40, 42, 38, 41, 40, 39, 43, 40, 41, 42, 40, 39])) is None


def test_sustained_climb_is_the_knee_at_its_first_sample():
    knee = find_knee(samples([40, 40, 40, 40, 40, 41, 39, 40, 150, 180, 240, 300]))
    assert knee is not None
    assert (knee.t_s, knee.users, knee.p95_ms, knee.baseline_p95_ms, knee.threshold_ms) == (8.0, 18, 150, 40, 90)


def test_a_short_spike_is_not_a_knee():
    assert find_knee(samples([40, 40, 40, 40, 200, 210, 40, 40, 40, 40, 40, 40])) is None


def test_a_doubling_of_tiny_latencies_must_also_rise_50_ms():
    assert find_knee(samples([5, 5, 5, 5, 12, 12, 12, 12, 12, 12])) is None
    assert find_knee(samples([5, 5, 5, 5, 60, 60, 60, 60, 60, 60])).t_s == 4.0


def test_a_cold_start_does_not_hide_the_knee():
    knee = find_knee(samples([400, 700, 700, 700, 100, 100, 100, 100, 100, 100, 100, 300, 300, 300, 300]))
    assert (knee.t_s, knee.baseline_p95_ms, knee.threshold_ms) == (11.0, 100, 200)


def test_too_few_samples_or_samples_without_requests_give_no_knee():
    assert find_knee(samples([40, 400, 400, 400, 400])) is None
    assert find_knee(samples([None, None, None, None, None, None, None])) is None


def test_read_history_keeps_aggregated_rows_and_survives_na_and_a_half_written_line(tmp_path):
    path = tmp_path / "locust_stats_history.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HISTORY_COLUMNS)
        writer.writerow([1000, 0, "", "Aggregated", "0.000000", "0.000000", *["N/A"] * 11, 0, 0])
        writer.writerow([1001, 5, "GET", "search", "3.000000", "0.000000", *[120] * 11, 3, 0])
        writer.writerow([1001, 5, "", "Aggregated", "4.500000", "0.500000", 20, *[30] * 4, 95, 96, 99, 100, 100, 100, 9, 1])
        fh.write("1002,10,,Aggregated,")  # Locust still writing
    rows = read_history(path)
    assert [(s.t_s, s.users, s.rps, s.p50_ms, s.p95_ms, s.p99_ms, s.total_requests, s.total_failures) for s in rows] == [
        (0.0, 0, 0.0, None, None, None, 0, 0),
        (1.0, 5, 4.5, 20.0, 95.0, 99.0, 9, 1),
    ]
    assert read_history(tmp_path / "missing.csv") == []


def test_findings_bookkeeping_keeps_first_seen_peak_and_times_on_top(tmp_path):
    result = LoadtestResult("f.py", "http://x", "http://api", 1, 1.0, 10.0, "now", tmp_path)
    a = {"kind": "slow_query", "service": "shop", "target": "SELECT 1", "score": 0.5}
    b = {"kind": "hot_endpoint", "service": "shop", "target": "/search", "score": 0.4}
    _record_findings(result, 2.0, [a, b])
    _record_findings(result, 4.0, [{**b, "score": 0.9}, {**a, "score": 0.7}])
    _record_findings(result, 6.0, [{**a, "score": 0.6}])
    seen_a = result.seen[("slow_query", "shop", "SELECT 1")]
    seen_b = result.seen[("hot_endpoint", "shop", "/search")]
    assert (seen_a.first_seen_s, seen_a.peak_score, seen_a.times_on_top) == (2.0, 0.7, 2)
    assert (seen_b.first_seen_s, seen_b.peak_score, seen_b.times_on_top) == (2.0, 0.9, 1)
    assert len(result.timeline) == 3


def test_run_problem_names_an_unreachable_target_and_a_failed_sidecar_read(tmp_path):
    result = LoadtestResult("f.py", "http://127.0.0.1:9", "http://api", 1, 1.0, 10.0, "now", tmp_path, locust_exit_code=0)
    result.per_name = [{"Name": "Aggregated", "Request Count": "12", "Failure Count": "12"}]
    result.failures = [{"Method": "GET", "Name": "x", "Error": "ConnectionRefusedError(111, 'Connection refused')", "Occurrences": "12"}]
    assert run_problem(result) == "target http://127.0.0.1:9 was unreachable: every request failed to connect"
    result.per_name = [{"Name": "Aggregated", "Request Count": "12", "Failure Count": "3"}]
    assert run_problem(result) is None
    result.findings_error = "cannot reach the collector"
    assert run_problem(result) == "could not read the sidecar's findings at the end: cannot reach the collector"


def test_checks_fail_with_one_clear_line(tmp_path, real_collector):
    check_api(real_collector.url, "s3cret")  # a real collector answers /health
    port = free_port()
    with pytest.raises(LoadtestError, match=rf"^sidecar API unreachable at http://127.0.0.1:{port} \(ConnectionError\)"):
        check_api(f"http://127.0.0.1:{port}", None)
    with pytest.raises(LoadtestError, match=rf"^target http://127.0.0.1:{port} is unreachable \(ConnectionError\)$"):
        check_target(f"http://127.0.0.1:{port}")
    with pytest.raises(LoadtestError, match="needs a scheme and a host"):
        check_target("127.0.0.1:8000")
    with pytest.raises(LoadtestError, match="needs a scheme and a host"):
        check_target("ftp://127.0.0.1/")
    with pytest.raises(LoadtestError, match=r"^locustfile not found: "):
        check_locustfile(sys.executable, tmp_path / "nope.py")


@pytest.mark.parametrize("flags", [["--users", "0"], ["--duration", "-5"], ["--spawn-rate", "abc"], []])
def test_bad_flags_are_refused_by_the_parser(flags, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["loadtest", *flags])
    assert exc.value.code == 2
    assert "chokepoint loadtest: error:" in capsys.readouterr().err
