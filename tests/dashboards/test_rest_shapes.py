"""The collector's answers have the shapes chokepoint.semconv.rest declares, as the dashboards' client reads them.

A real collector (store, analyzer and REST API) holding synthetic data answers every
resource; each row must carry every key its ``TypedDict`` lists (more keys are allowed).
"""

from __future__ import annotations

import pytest

from chokepoint.semconv import rest
from chokepoint.semconv.rest import RESOURCES, shape_keys

SERVICE, ROUTE = "shop", "/checkout"  # the synthetic collector's service and its slowest route


def missing_keys(row: dict, shape: type) -> list[str]:
    return [key for key in shape_keys(shape) if key not in row]


def answers(api) -> dict[str, object]:
    service = SERVICE
    return {
        "health": api.health(),
        "services": api.services(),
        "endpoints": api.endpoints(window_s=600),
        "dependencies": api.dependencies(window_s=600),
        "pools": api.pools(),
        "breakers": api.breakers(),
        "consumer-lag": api.consumer_lag(),
        "bottlenecks": api.bottlenecks(window_s=600),
        "traces": api.traces(limit=5),
        "timeseries": api.get("timeseries", metric="latency_p99_ms", service=service, window=600),
        "histogram": api.histogram(service, ROUTE, window_s=600),
        "heatmap": api.heatmap(service, ROUTE, window_s=600),
        "breakdown": api.breakdown(service, ROUTE, window_s=600),
    }


@pytest.fixture(scope="module")
def every_answer(real_collector):
    from chokepoint.dashboards.client import ApiClient
    from tests.dashboards.conftest import TOKEN

    return answers(ApiClient(real_collector.url, timeout_s=10.0, token=TOKEN))


@pytest.mark.parametrize("path", sorted(RESOURCES))
def test_every_answer_has_its_declared_shape(every_answer, path):
    resource = RESOURCES[path]
    answer = every_answer[path]
    if resource.key is None:
        assert isinstance(answer, dict)
        assert missing_keys(answer, resource.row) == []
        return
    assert isinstance(answer, list) and answer, f"the synthetic collector answered no {path} rows"
    for row in answer:
        assert missing_keys(row, resource.row) == [], row


def test_nested_rows_have_their_shapes_too(every_answer):
    assert [missing_keys(s, rest.Series) for s in every_answer["timeseries"]["series"]] == [[]] * len(every_answer["timeseries"]["series"])
    assert every_answer["timeseries"]["series"], "no latency series"
    for breaker in every_answer["breakers"]:
        assert missing_keys(breaker["calls"], rest.BreakerCalls) == []
    for trace in every_answer["traces"]:
        assert trace["spans"] and all(missing_keys(span, rest.TraceSpan) == [] for span in trace["spans"]), trace
