"""Histograms and cumulative → delta (``temporality``): through the real metric path and on
``CumulativeToDelta`` alone, with hand-built protobuf points and exact expected values."""

from __future__ import annotations

import math

import pytest

from chokepoint.collector.temporality import BadPoint, CumulativeToDelta
from chokepoint.instrument import signals as sig
from tests.collector.otlp_builders import CUMULATIVE, NS, T0, exp_hist, explicit_hist, kvs, metrics_request, number, one


def test_delta_explicit_histogram_feeds_route_latency(ingestor, store):
    m = explicit_hist(
        sig.HTTP_SERVER_DURATION,
        [0.01, 0.1, 1.0],
        [0, 9, 0, 1],
        {"http.route": "/a", "http.request.method": "GET", "http.response.status_code": 200},
        total=1.5,
        minimum=0.02,
        maximum=2.0,
    )
    m5 = explicit_hist(sig.HTTP_SERVER_DURATION, [0.01, 0.1, 1.0], [0, 1, 0, 0], {"http.route": "/a", "http.response.status_code": 500})
    result = ingestor.consume_metrics(metrics_request("shop", [m, m5]))
    assert (result.accepted, result.rejected) == (2, 0)
    row = one(store.endpoints(), route="/a")
    assert row["count"] == 11 and row["error_rate"] == pytest.approx(1 / 11, abs=1e-6)
    assert row["p50_ms"] == pytest.approx(math.sqrt(0.01 * 0.1) * 1000, rel=0.01)
    assert row["p999_ms"] == pytest.approx(math.sqrt(0.01 * 0.1) * 1000, rel=0.01)  # rank 9 of 11
    sketch = store.window(60).routes[("shop", "/a")].sketch
    assert (sketch.min, sketch.max, sketch.quantile(1.0)) == (0.02, 2.0, 2.0)
    assert store.health()["metric_points_total"] == 2


def test_cumulative_histogram_is_turned_into_deltas_per_stream(ingestor, store, clock):
    attrs = {"http.route": "/a"}
    start = T0 + 1  # the stream started after the collector: its first point counts in full
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [4, 0], attrs, CUMULATIVE, start)]))
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [10, 1], attrs, CUMULATIVE, start)]))
    assert one(store.endpoints(), route="/a")["count"] == 11
    # reset: a new start time → the point is the delta
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [2, 0], attrs, CUMULATIVE, start + 50)]))
    assert one(store.endpoints(), route="/a")["count"] == 13
    # another resource instance with the same attributes is its own stream
    req = metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [1, 0], attrs, CUMULATIVE, start)])
    req.resource_metrics[0].resource.attributes.extend(kvs({"service.instance.id": "b"}))
    ingestor.consume_metrics(req)
    assert one(store.endpoints(), route="/a")["count"] == 14


def test_first_cumulative_point_of_an_older_stream_is_only_a_baseline(ingestor, store):
    attrs = {"http.route": "/a"}
    old = T0 - 3600  # the app ran for an hour before the collector started
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [1000, 0], attrs, CUMULATIVE, old)]))
    assert store.endpoints() == []
    ingestor.consume_metrics(metrics_request("shop", [explicit_hist(sig.HTTP_SERVER_DURATION, [0.1], [1004, 1], attrs, CUMULATIVE, old)]))
    assert one(store.endpoints(), route="/a")["count"] == 5


def test_exponential_histogram_delta_and_cumulative_with_scale_change(ingestor, store):
    attrs = {"http.route": "/e"}
    # scale 3: base 2^(1/8); 10 values in bucket 2^(-54/8)=~9.3 ms .. next
    ingestor.consume_metrics(metrics_request("shop", [exp_hist(sig.HTTP_SERVER_DURATION, 3, -54, [10], attrs)]))
    row = one(store.endpoints(), route="/e")
    assert row["count"] == 10
    assert row["p50_ms"] == pytest.approx(2 ** (-53.5 / 8) * 1000, rel=0.011)
    # cumulative stream that downscales from scale 3 to 2 between exports
    c_attrs = {"http.route": "/c"}
    start = T0 + 1
    ingestor.consume_metrics(metrics_request("shop", [exp_hist(sig.HTTP_SERVER_DURATION, 3, -54, [4, 0, 2], c_attrs, CUMULATIVE, start)]))
    # at scale 2: index -27 = old -54,-53; index -26 = old -52,-51; two more in -26, one more in -27
    ingestor.consume_metrics(metrics_request("shop", [exp_hist(sig.HTTP_SERVER_DURATION, 2, -27, [5, 4], c_attrs, CUMULATIVE, start)]))
    assert one(store.endpoints(), route="/c")["count"] == 9


def test_old_semconv_duration_in_milliseconds(ingestor, store):
    m = explicit_hist("http.server.duration", [5.0, 10.0, 25.0], [0, 0, 4, 0], {"http.method": "GET", "http.target": "/old/1"}, unit="ms")
    ingestor.consume_metrics(metrics_request("legacy", [m]))
    row = one(store.endpoints(), route="/old/{id}")
    assert row["count"] == 4 and row["p50_ms"] == pytest.approx(math.sqrt(10 * 25), rel=0.01)


def test_histogram_without_buckets_counts_at_the_mean(ingestor, store):
    m = explicit_hist(sig.HTTP_SERVER_DURATION, [], [], {"http.route": "/nobuckets"})
    del m.histogram.data_points[0].bucket_counts[:]
    m.histogram.data_points[0].count = 4
    m.histogram.data_points[0].sum = 0.2
    ingestor.consume_metrics(metrics_request("shop", [m]))
    row = one(store.endpoints(), route="/nobuckets")
    assert row["count"] == 4 and row["p50_ms"] == pytest.approx(50.0, rel=0.01)


def cumulative_sum(value, start=T0 + 1, t=T0 + 10):
    m = number("requests", value, kind="sum", temporality=CUMULATIVE, start=start)
    p = m.sum.data_points[0]
    p.time_unix_nano = int(t * NS)
    return m, p


def test_cumulative_sum_deltas_resets_and_the_stream_cap(store):
    streams = CumulativeToDelta(store)
    key = (("svc",), "requests", ())
    assert streams.number(key, *_mp(cumulative_sum(5))) == 5  # the stream began while we watched
    assert streams.number(key, *_mp(cumulative_sum(12))) == 7
    assert streams.number(key, *_mp(cumulative_sum(3))) == 3  # went down: a reset counts in full
    assert streams.number(key, *_mp(cumulative_sum(4, start=T0 + 5))) == 4  # a new start time: a reset
    older = (("svc",), "older", ())
    assert streams.number(older, *_mp(cumulative_sum(100, start=T0 - 60))) == 0.0  # began before us: a baseline
    streams.max_streams = 2
    streams.number((("svc",), "third", ()), *_mp(cumulative_sum(1)))
    assert store.dropped == {"streams": 1}


def test_rate_of_a_cumulative_sum_is_per_second_of_the_senders_interval(store):
    streams = CumulativeToDelta(store)
    key = (("svc",), "gc", ())
    m, p = cumulative_sum(2.0, start=T0 + 1, t=T0 + 5)
    assert streams.rate(key, m, p) == pytest.approx(0.5)  # 2 s over 4 s since the start
    m, p = cumulative_sum(3.0, start=T0 + 1, t=T0 + 15)
    assert streams.rate(key, m, p) == pytest.approx(0.1)  # 1 s more over 10 s


def test_malformed_explicit_bounds_raise_a_bad_point(store):
    m = explicit_hist("d", [0.2, 0.1], [1, 1, 1])
    with pytest.raises(BadPoint, match="not increasing"):
        CumulativeToDelta(store).sketch(("k",), m, "histogram", m.histogram.data_points[0], None)


def _mp(metric_and_point):
    m, p = metric_and_point
    return m, "sum", p
