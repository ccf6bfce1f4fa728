"""The load-test knee for a target saturated from its first second (issue 13 item 12)."""

from __future__ import annotations

from chokepoint.dashboards.loadtest import LoadtestResult, Sample, find_knee, find_saturation_from_start
from chokepoint.dashboards.loadtest_report import markdown_report


def ramp(rps_of, p95_of, n: int = 30) -> list[Sample]:
    """Users ramp 10 → 10 + n; throughput and p95 as functions of the users."""
    return [Sample(float(i), 10 + i, rps_of(10 + i), 0.0, p95_of(10 + i) / 2, p95_of(10 + i), p95_of(10 + i), 100 * i, 0) for i in range(n)]


# saturated from the start: ~5 rps whatever the users; latency ≈ users / throughput
SATURATED = ramp(lambda u: 5.0, lambda u: 1000.0 * u / 5.0)
# a healthy ramp: throughput grows with the users, latency flat
HEALTHY = ramp(lambda u: 2.0 * u, lambda u: 40.0)


def test_a_target_saturated_from_the_start_is_named_so_not_by_a_late_knee():
    assert find_knee(SATURATED) is not None  # latency doubles with the users: a "knee" mid-run, past capacity all along
    sat = find_saturation_from_start(SATURATED)
    assert sat is not None and sat.rps == 5.0 and sat.users_to >= 2 * sat.users_from and sat.p95_to_ms > sat.p95_from_ms


def test_a_healthy_ramp_is_not_saturated():
    assert find_knee(HEALTHY) is None
    assert find_saturation_from_start(HEALTHY) is None


def test_flat_users_tell_nothing():
    assert find_saturation_from_start([Sample(float(i), 10, 5.0, 0.0, 900.0, 2000.0, 2500.0, 10 * i, 0) for i in range(20)]) is None


def test_the_report_says_saturated_from_the_start(tmp_path):
    r = LoadtestResult("locustfile.py", "http://127.0.0.1:8000", "http://127.0.0.1:8787", 30, 1.0, 30.0, "2026-11-22T00:00:00+00:00", tmp_path)
    r.samples = SATURATED
    md = markdown_report(r)
    assert "Saturated from the start: throughput held near **5.0 rps**" in md
    assert "not pushed past its capacity" not in md


def test_without_a_ramp_an_early_warning_finding_says_saturated_from_the_start(tmp_path):
    r = LoadtestResult("locustfile.py", "http://127.0.0.1:8000", "http://127.0.0.1:8787", 10, 10.0, 30.0, "2026-11-22T00:00:00+00:00", tmp_path)
    r.samples = [Sample(float(i), 10, 5.0, 0.0, 900.0, 2000.0, 2500.0, 10 * i, 0) for i in range(20)]
    r.timeline = [(2.0, []), (4.0, [{"kind": "worker_pool_saturation", "severity": "critical", "score": 0.8}])]
    md = markdown_report(r)
    assert "No knee in latency, but the sidecar named **Worker pool saturated** (critical) 4 s into the run" in md
    r.timeline = [(4.0, [{"kind": "cacheable_reads", "severity": "info", "score": 0.3}])]
    assert "not pushed past its capacity" in markdown_report(r)


def test_an_info_top_finding_is_no_likely_bottleneck_and_evidence_reads_for_people(tmp_path):
    r = LoadtestResult("locustfile.py", "http://127.0.0.1:8000", "http://127.0.0.1:8787", 10, 10.0, 30.0, "2026-11-22T00:00:00+00:00", tmp_path)
    r.findings = [
        {"kind": "cacheable_reads", "service": "shop", "target": "t", "severity": "info", "score": 0.3, "summary": "s", "evidence": {"repeated_ratio": 0.95}}
    ]
    md = markdown_report(r)
    assert "No bottleneck above info; the top finding, for reference:" in md and "| repeated ratio | 95% |" in md
