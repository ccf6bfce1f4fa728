"""``AgentInstruments.record_span`` / ``record_request`` and ``compute_breakdown`` record
exactly what the straightforward implementation records (the one before the per-request
path was made cheaper, kept below as the reference): same categories, same breakdowns
(exact floats), same metric points, over varied generated traces of SDK spans and of
plain-dict spans (the lean spans' read side)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from chokepoint.instrument.breakdown import Breakdown, classify, compute_breakdown, plain_attributes, span_failed
from chokepoint.instrument.context import RequestContext
from chokepoint.instrument.instruments import (
    CONTENT_ENCODING_KEYS,
    CONTENT_LENGTH_KEYS,
    K_BODY,
    K_BREAKDOWN,
    K_CLIENT,
    K_CLIENT_OK,
    K_DB,
    K_MESSAGING,
    K_ROUTE,
    K_SERVER,
    K_SERVER_OK,
    MAX_STATEMENTS,
    AgentInstruments,
    route_of_attributes,
)
from chokepoint.instrument.lean_metrics import LeanMetrics
from chokepoint.instrument.sanitize import normalize_sql

# ---------------------------------------------------------------- the reference


def ref_first(attributes, keys):
    if attributes:
        for key in keys:
            value = attributes.get(key)
            if value is not None:
                return value
    return None


def ref_failed(span) -> bool:
    if span.status.status_code is StatusCode.ERROR:
        return True
    status = ref_first(span.attributes, ("http.response.status_code", "http.status_code"))
    return isinstance(status, int) and status >= 500


def ref_record_span(instruments, statements: dict, span):
    kind = span.kind
    attributes = span.attributes if span.attributes is not None else {}
    get = attributes.get
    seconds = (span.end_time - span.start_time) / 1e9
    if kind is SpanKind.CLIENT:
        system = get("db.system.name") or get("db.system")
        if system is not None:
            raw = get("db.query.text") or get("db.statement")
            if raw:
                raw = str(raw)
                statement = statements.get(raw)
                if statement is None:
                    statement = "other" if len(statements) >= MAX_STATEMENTS else statements.setdefault(raw, normalize_sql(raw))
                instruments.db_duration.record(seconds, (system, statement), K_DB)
                return "db", None
            if span.name != "connect":
                instruments.db_duration.record(seconds, (system, span.name), K_DB)
            return "db", span.name
        method = get("http.request.method") or get("http.method")
        if method is not None:
            host = str(get("server.address") or get("net.peer.name") or get("http.host") or "unknown")
            status = get("http.response.status_code") or get("http.status_code")
            if span.status.status_code is StatusCode.ERROR:
                instruments.client_duration.record(seconds, (host, method, status, get("error.type") or str(status or "error")), K_CLIENT)
            else:
                instruments.client_duration.record(seconds, (host, method, status), K_CLIENT_OK)
            return "http", host
        return None, None
    if kind is SpanKind.SERVER:
        route = route_of_attributes(attributes, span.name)
        method = get("http.request.method") or get("http.method") or "_OTHER"
        status = get("http.response.status_code") or get("http.status_code")
        if span.status.status_code is StatusCode.ERROR:
            instruments.server_duration.record(seconds, (route, method, status, get("error.type") or str(status or "error")), K_SERVER)
        else:
            instruments.server_duration.record(seconds, (route, method, status), K_SERVER_OK)

        def header(keys):
            value = ref_first(attributes, keys)
            return (value[0] if value else None) if isinstance(value, (tuple, list)) else value

        length = header(CONTENT_LENGTH_KEYS)
        if length is not None:
            try:
                size = int(length)
            except (TypeError, ValueError):
                size = None
            if size is not None:
                encoding = header(CONTENT_ENCODING_KEYS)
                instruments.response_body_size.record(size, (route, bool(encoding) and str(encoding).lower() != "identity"), K_BODY)
        return None, None
    if kind is SpanKind.PRODUCER or kind is SpanKind.CONSUMER:
        system = get("messaging.system")
        if system is None:
            return None, None
        operation = get("messaging.operation.type") or get("messaging.operation") or ("send" if kind is SpanKind.PRODUCER else "process")
        destination = get("messaging.destination.name") or get("messaging.destination") or "unknown"
        histogram = instruments.messaging_process_duration if kind is SpanKind.CONSUMER and operation == "process" else instruments.messaging_duration
        histogram.record(seconds, (system, destination, operation), K_MESSAGING)
        return ("kafka" if kind is SpanKind.PRODUCER else None), None
    return None, None


def ref_breakdown(root, request, classified) -> Breakdown:
    total_s = max((root.end_time - root.start_time) / 1e9, 0.0)
    result = Breakdown(total_s=total_s)
    ids: dict[str, set] = {}
    for span, category, _host in classified:
        if category is not None:
            ids.setdefault(category, set()).add(span.context.span_id)
    components = result.components
    last_failed: dict = {}
    connect_s = 0.0
    for span, category, host in sorted((e for e in classified if e[1] is not None), key=lambda e: e[0].start_time):
        parent = span.parent
        if parent is not None and parent.span_id in ids[category]:
            continue
        seconds = max((span.end_time - span.start_time) / 1e9, 0.0)
        if category == "http":
            name = f"http:{host}"
            attributes = span.attributes or {}
            call = (host, ref_first(attributes, ("http.request.method", "http.method")), attributes.get("url.full") or attributes.get("http.url"), span.name)
            if last_failed.get(call):
                result.retried_calls[host] = result.retried_calls.get(host, 0) + 1
            last_failed[call] = ref_failed(span)
        else:
            name = category
            if category == "db":
                if host is None:
                    result.db_queries += 1
                else:
                    connect_s += seconds
        components[name] = components.get(name, 0.0) + seconds
    queue_s = 0.0
    if request is not None:
        for name, seconds in request.component_seconds.items():
            if name == "queue_before_span":  # before the root span (X-Request-Start): added to the total, not taken out of self
                queue_s = seconds
            elif name == "kafka_wait":
                components["kafka"] = components.get("kafka", 0.0) + seconds
            elif name not in ("self", "db", "kafka") and not name.startswith("http"):
                if name == "pool_wait" and connect_s > 0.0:
                    if connect_s >= seconds:
                        components["db"] = max(components.get("db", 0.0) - seconds, 0.0)
                    else:
                        seconds = max(seconds - connect_s, 0.0)
                components[name] = components.get(name, 0.0) + seconds
    components["self"] = max(total_s - sum(components.values()), 0.0)
    if queue_s > 0.0:
        components["queue"] = components.get("queue", 0.0) + queue_s
        result.total_s += queue_s
    return result


def ref_record_request(instruments, route, breakdown, slow) -> None:
    for component, seconds in breakdown.components.items():
        if seconds > 0.0:
            instruments.breakdown_time.add(seconds, (route, component, slow), K_BREAKDOWN)
    instruments.db_queries.record(breakdown.db_queries, (route,), K_ROUTE)
    for host, count in breakdown.retried_calls.items():
        instruments.retries.add(count, {"server.address": host, "http.route": route})


# ---------------------------------------------------------------- generated traces


@dataclass
class DictSpan:
    """The read side of a lean span: a plain attribute dict."""

    name: str
    context: SpanContext
    parent: SpanContext | None
    kind: SpanKind
    attributes: dict
    status: Status
    start_time: int
    end_time: int


SQL = ["SELECT id, name FROM items WHERE id = %(id)s", "SELECT * FROM t WHERE a = 1", "UPDATE t SET a = 'x' WHERE id = 7", "select 1"]


class TraceMaker:
    def __init__(self, rng: random.Random, sdk: bool):
        self.rng = rng
        self.sdk = sdk
        self.trace_id = rng.getrandbits(128)

    def span(self, name, kind, attributes, parent, start, end, error=False):
        context = SpanContext(self.trace_id, self.rng.getrandbits(64), is_remote=False)
        status = Status(StatusCode.ERROR) if error else Status(StatusCode.UNSET)
        if not self.sdk:
            return DictSpan(name, context, parent.context if parent else None, kind, dict(attributes), status, start, end)
        bounded = None if attributes is None else BoundedAttributes(128, attributes, immutable=False)
        return ReadableSpan(
            name=name, context=context, parent=parent.context if parent else None, kind=kind, attributes=bounded, status=status, start_time=start, end_time=end
        )

    def request(self):
        rng = self.rng
        t = 1_000_000_000
        attributes = {"http.request.method": rng.choice(["GET", "POST"]), "url.path": "/work/3"}
        if rng.random() < 0.8:
            attributes["http.route"] = rng.choice(["/work/{item_id}", "/a", "/b"])
        status = rng.choice([200, 200, 404, 500, None])
        if status is not None:
            attributes["http.response.status_code"] = status
        if rng.random() < 0.7:
            attributes["http.response.header.content-length"] = rng.choice([("55",), ("x",), "120", ()])
            if rng.random() < 0.5:
                attributes["http.response.header.content-encoding"] = rng.choice([("gzip",), ("identity",), "br"])
        root_name = rng.choice(["GET /work/{item_id}", "GET", "GET /raw/path"])
        root = self.span(root_name, SpanKind.SERVER, attributes, None, t, t, error=rng.random() < 0.1)
        children = []
        clock = t
        for _ in range(rng.randint(0, 9)):
            start = clock + rng.randint(0, 50_000)
            end = start + rng.randint(0, 2_000_000)
            clock = start if rng.random() < 0.3 else end
            parent = rng.choice([root, *children[-2:]]) if children else root
            what = rng.random()
            if what < 0.35:
                system = {"db.system.name": "postgresql"} if rng.random() < 0.8 else {"db.system": "sqlite"}
                attrs = {**system, "server.address": "127.0.0.1", "db.query.text" if rng.random() < 0.8 else "db.statement": rng.choice(SQL)}
                children.append(self.span("SELECT chokepoint", SpanKind.CLIENT, attrs, parent, start, end))
            elif what < 0.45:
                children.append(self.span(rng.choice(["connect", "begin"]), SpanKind.CLIENT, {"db.system.name": "postgresql"}, parent, start, end))
            elif what < 0.75:
                host = rng.choice([{"server.address": "pay.example"}, {"net.peer.name": "old.example"}, {}])
                code = rng.choice([200, 200, 503, None])
                attrs = {"http.request.method": rng.choice(["GET", "POST"]), "url.full": rng.choice(["http://pay.example/", "http://pay.example/x"]), **host}
                if code is not None:
                    attrs["http.response.status_code"] = code
                if rng.random() < 0.2:
                    attrs["error.type"] = "ConnectError"
                children.append(self.span("GET", SpanKind.CLIENT, attrs, parent, start, end, error=rng.random() < 0.15))
            elif what < 0.9:
                kind = rng.choice([SpanKind.PRODUCER, SpanKind.CONSUMER])
                attrs = {"messaging.system": "kafka", "messaging.destination.name": "orders"} if rng.random() < 0.8 else {}
                if rng.random() < 0.5:
                    attrs["messaging.operation.type"] = rng.choice(["send", "process", "receive"])
                children.append(self.span("orders send", kind, attrs, parent, start, end))
            else:
                children.append(self.span("work", SpanKind.INTERNAL, {"x": 1}, parent, start, end))
        root_end = clock + rng.randint(-1_000_000, 5_000_000)
        if self.sdk:
            root._end_time = root_end
        else:
            root.end_time = root_end
        rng.shuffle(children) if rng.random() < 0.2 else None  # out of start order now and then
        components = {}
        for name in rng.sample(["pool_wait", "kafka_wait", "queue", "queue_before_span", "http_wait", "db", "self"], rng.randint(0, 3)):
            components[name] = rng.choice([0.0, 0.0002, 0.001, 0.01])
        return root, children, RequestContext(route="/work/{item_id}", component_seconds=components)


def points(lean: LeanMetrics) -> dict:
    scope = lean.scope_metrics()
    out = {}
    for metric in scope.metrics if scope else ():
        for p in metric.data.data_points:
            key = (metric.name, tuple(sorted(p.attributes.items(), key=lambda kv: kv[0])))
            if hasattr(p, "positive"):
                out[key] = (p.count, p.sum, p.min, p.max, p.zero_count, p.scale, p.positive.offset, tuple(p.positive.bucket_counts))
            else:
                out[key] = p.value
    return out


class NoMeter:
    def create_counter(self, *args, **kwargs):
        return None


def run_both(sdk: bool, seed: int, traces: int = 300):
    rng = random.Random(seed)
    new, old = AgentInstruments(NoMeter()), AgentInstruments(NoMeter())
    statements: dict = {}
    for n in range(traces):
        root, children, request = TraceMaker(rng, sdk).request()
        classified_new = [(span, *new.record_span(span)) for span in children]
        classified_old = [(span, *ref_record_span(old, statements, span)) for span in children]
        assert [e[1:] for e in classified_new] == [e[1:] for e in classified_old]
        assert new.record_span(root) == ref_record_span(old, statements, root)
        assert [classify(span)[1:] for span in children] == [e[1:] for e in classified_old]
        assert [span_failed(s) for s in (root, *children)] == [ref_failed(s) for s in (root, *children)]
        breakdown = compute_breakdown(root, request=request, classified=classified_new)
        assert breakdown == ref_breakdown(root, request, classified_old)  # exact floats, same order of keys below
        assert list(breakdown.components) == list(ref_breakdown(root, request, classified_old).components)
        assert compute_breakdown(root, children, request) == breakdown
        slow = n % 3 == 0
        new.record_request("/work/{item_id}", breakdown, slow)
        ref_record_request(old, "/work/{item_id}", breakdown, slow)
    return points(new.lean), points(old.lean)


def test_sdk_spans_record_what_the_reference_records():
    new, old = run_both(sdk=True, seed=1)
    assert new == old
    assert len(new) > 20  # the generated traces reach every histogram and counter
    assert {name for name, _ in new} >= {
        "http.server.request.duration",
        "http.client.request.duration",
        "db.client.operation.duration",
        "messaging.client.operation.duration",
        "messaging.process.duration",
        "http.server.response.body.size",
        "chokepoint.request.breakdown.time",
        "chokepoint.request.db.queries",
        "chokepoint.http.client.retries",
    }


def test_plain_dict_spans_record_what_the_reference_records():
    for seed in (2, 3):
        new, old = run_both(sdk=False, seed=seed)
        assert new == old


def test_plain_attributes_reads_the_sdk_dict_without_copying():
    maker = TraceMaker(random.Random(4), sdk=True)
    span = maker.span("q", SpanKind.CLIENT, {"db.system.name": "postgresql"}, None, 1, 2)
    assert plain_attributes(span) is span._attributes._dict
    assert plain_attributes(maker.span("q", SpanKind.CLIENT, None, None, 1, 2)) == {}
    lean = TraceMaker(random.Random(4), sdk=False).span("q", SpanKind.CLIENT, {"a": 1}, None, 1, 2)
    assert plain_attributes(lean) is lean.attributes


def test_statement_table_is_bounded_and_overflow_is_other():
    instruments = AgentInstruments(NoMeter())
    maker = TraceMaker(random.Random(5), sdk=False)
    for n in range(MAX_STATEMENTS + 5):
        instruments.record_span(maker.span("q", SpanKind.CLIENT, {"db.system.name": "postgresql", "db.query.text": f"SELECT {n} FROM t{n}"}, None, 1, 2))
    statements = {attrs["db.query.text"] for (name, attrs_items) in points(instruments.lean) for attrs in [dict(attrs_items)]}
    assert len(statements) == MAX_STATEMENTS + 1 and "other" in statements
    # the same statement text from another database system keeps that system
    instruments.record_span(maker.span("q", SpanKind.CLIENT, {"db.system.name": "mysql", "db.query.text": "SELECT 0 FROM t0"}, None, 1, 2))
    systems = {dict(items)["db.system.name"] for (_name, items) in points(instruments.lean)}
    assert systems == {"postgresql", "mysql"}
