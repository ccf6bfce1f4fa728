import math

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from chokepoint.instrument.lean_metrics import MAX_BUCKETS, SCALE, LeanMetrics, _downscale

KEYS = ("http.route", "http.request.method")


def bucket_bounds(scale, index):
    base = 2 ** (2**-scale)
    return base**index, base ** (index + 1)


def test_histogram_counts_sum_min_max_and_bucket_placement():
    registry = LeanMetrics("t")
    histogram = registry.histogram("h", "s")
    values = [0.001, 0.002, 0.002, 0.5, 0.0]
    for value in values:
        histogram.record(value, ("/a", "GET"), KEYS)
    histogram.record(1.0, ("/b", "GET"), KEYS)
    points = {p.attributes["http.route"]: p for p in histogram.points(1, 2)}
    a = points["/a"]
    assert a.attributes == {"http.route": "/a", "http.request.method": "GET"}
    assert (a.count, a.sum, a.min, a.max, a.zero_count) == (5, sum(values), 0.0, 0.5, 1)
    assert sum(a.positive.bucket_counts) == 4
    # every positive value lies in its bucket (lower exclusive, upper inclusive)
    for value in values[:4]:
        index = math.ceil(math.log2(value) * 2**a.scale) - 1
        low, high = bucket_bounds(a.scale, index)
        assert low < value <= high * (1 + 1e-12)
        assert a.positive.bucket_counts[index - a.positive.offset] >= 1
    assert a.scale == SCALE - 1  # 0.001..0.5 needs more than MAX_BUCKETS buckets at SCALE
    assert (points["/b"].count, points["/b"].positive.offset) == (1, -1)


def test_downscale_caps_buckets_and_preserves_counts():
    buckets = {0: 1, 5000: 2, 77: 3}
    scale, offset, counts = _downscale(buckets)
    assert len(counts) <= MAX_BUCKETS
    assert sum(counts) == 6
    assert scale < SCALE
    assert offset == 0 >> (SCALE - scale)


def test_counter_accumulates_per_attribute_set():
    registry = LeanMetrics("t")
    counter = registry.counter("c", "s")
    counter.add(0.5, ("/a", "db"), ("r", "c"))
    counter.add(0.25, ("/a", "db"), ("r", "c"))
    counter.add(1.0, ("/a", "self"), ("r", "c"))
    metric = counter.metric(1, 2)
    assert metric.data.is_monotonic and metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    assert {p.attributes["c"]: p.value for p in metric.data.data_points} == {"db": 0.75, "self": 1.0}


def test_lean_metrics_join_the_sdk_collection_under_the_same_scope():
    reader = InMemoryMetricReader()
    resource = Resource.create({"service.name": "svc"})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    meter = provider.get_meter("chokepoint.instrument")
    meter.create_counter("sdk.counter").add(3)
    registry = LeanMetrics("chokepoint.instrument")
    registry.histogram("lean.hist", "s").record(0.1, ("x",), ("k",))
    registry.attach(provider, [reader], resource)
    data = reader.get_metrics_data()
    scopes = [sm for rm in data.resource_metrics for sm in rm.scope_metrics]
    assert [sm.scope.name for sm in scopes] == ["chokepoint.instrument"]
    assert sorted(m.name for m in scopes[0].metrics) == ["lean.hist", "sdk.counter"]
    assert data.resource_metrics[0].resource.attributes["service.name"] == "svc"
    provider.shutdown()


def test_lean_metrics_alone_still_produce_data():
    reader = InMemoryMetricReader()
    resource = Resource.create({"service.name": "svc"})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    registry = LeanMetrics("chokepoint.instrument")
    registry.counter("lean.c", "1").add(2, ("v",), ("k",))
    registry.attach(provider, [reader], resource)
    data = reader.get_metrics_data()
    assert [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics] == ["lean.c"]
    provider.shutdown()


def test_counter_add_each_is_add_under_one_lock():
    keys = ("r", "c")
    items = [(0.5, ("/a", "db")), (0.25, ("/a", "self")), (0.125, ("/a", "db")), (1.0, ("/b", "db"))]
    one, each = LeanMetrics("t").counter("c", "s"), LeanMetrics("t").counter("c", "s")
    for amount, values in items:
        one.add(amount, values, keys)
    each.add_each(items, keys)
    each.add_each([], keys)

    def values(counter):
        return [(p.attributes, p.value) for p in counter.metric(1, 2).data.data_points]

    assert values(each) == values(one)
    assert values(each)[0] == ({"r": "/a", "c": "db"}, 0.625)


def test_histogram_values_recorded_from_threads_while_collecting_are_all_counted():
    import threading

    from chokepoint.instrument import lean_metrics

    histogram = LeanMetrics("t").histogram("h", "s")
    per_thread, threads = 3 * lean_metrics.FOLD_AT // 2, 4  # past FOLD_AT: folds on the recording threads too
    done = threading.Event()
    seen = []

    def collect():
        while not done.is_set():
            seen.append(sum(p.count for p in histogram.points(1, 2)))

    def work(n):
        for i in range(per_thread):
            histogram.record(0.001 * (1 + i % 7), (f"/r{n % 2}", "GET"), KEYS)

    collector = threading.Thread(target=collect)
    collector.start()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    collector.join()
    points = histogram.points(1, 2)
    assert sum(p.count for p in points) == per_thread * threads
    assert {p.attributes["http.route"]: p.count for p in points} == {"/r0": per_thread * 2, "/r1": per_thread * 2}
    assert seen == sorted(seen)  # cumulative: never goes back
