"""/breakdown's "slow" figures are per-request averages of the requests the agent marks slow (issue 13 item 11)."""

from __future__ import annotations

import random

import pytest

from chokepoint.collector.store import Store


@pytest.mark.parametrize(
    ("median_s", "slow_share"),
    [
        (2.0, 1.0),  # every request above the agent's 1 s floor: all of them are slow
        (0.05, 0.05),  # fast requests: the slow ones are those above the route's p95
    ],
)
def test_slow_breakdown_is_a_per_request_average(median_s, slow_share):
    rng = random.Random(5)
    store = Store()
    durations = [median_s * rng.lognormvariate(0.0, 0.3) for _ in range(400)]
    store.add_requests("blog", "/posts", durations)
    slow = sorted(durations)[-round(len(durations) * slow_share) :]
    # a metric-fed breakdown: seconds per component, no per-request count (as from OTLP metrics)
    store.add_breakdown("blog", "/posts", {"self": sum(durations) * 0.9, "db": sum(durations) * 0.1})
    store.add_breakdown("blog", "/posts", {"self": sum(slow) * 0.9, "db": sum(slow) * 0.1}, slow=True)
    b = store.breakdown("blog", "/posts")
    per_slow_request_ms = 1000.0 * sum(slow) / len(slow)
    assert sum(b["slow"].values()) == pytest.approx(per_slow_request_ms, rel=0.25)  # the p95 cut is estimated from the route sketch
    assert sum(b["slow"].values()) <= 1000.0 * max(durations)
