"""What every library-matrix test checks, on one instrumented app in a real subprocess.

Usage (in a matrix venv, see ``scripts/matrix.py``)::

    from tests.matrix.harness import Traced, check_route, installed

    installed("SQLAlchemy")                    # the version under test (asserts the venv has it)
    with Traced(APP_SOURCE, tmp_path, {"APP_PG_URL": ...}) as traced:
        check_route(traced, "/pg/{n}", [{"db.system.name": "postgresql", "db.query.text": "..."}], component="db")

``Traced`` runs ``chokepoint-instrument python app.py PORT`` with its OTLP exporter pointed at
an :class:`~otlp_sink.OtlpSink`.  ``check_route`` calls the route three times and checks, on
the wire: one server span per call; under each, exactly the expected client spans (the
given attributes — ``"name"`` is the span's name — in the order they started; no second span for the same
statement or call); the client
duration metric per span; the request breakdown's component time; and for DB spans the
queries-per-request histogram.
"""

from __future__ import annotations

import os
import urllib.request
from importlib.metadata import version

from instrumented_app import InstrumentedApp

from chokepoint.instrument import signals
from otlp_sink import OtlpSink

SERVER, CLIENT, PRODUCER = 2, 3, 4
CALLS = (3, 4, 5)
START_TIMEOUT_S = 240.0  # an app importing every instrumentation on a host shared with other work
WAIT_S = 120.0  # for what the app exports (every 0.3 s)
DB_KEYS = ("db.system.name", "db.query.text")


def fastapi_app(setup: str, routes: str) -> str:
    """The source of a FastAPI app (uvicorn, ``GET /health``) with ``setup`` at module level and ``routes``."""
    return (
        "import os, sys\nimport uvicorn\nfrom fastapi import FastAPI\n"
        + setup
        + '\napp = FastAPI()\n\n@app.get("/health")\ndef health():\n    return {"ok": True}\n'
        + routes
        + '\nif __name__ == "__main__":\n    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")\n'
    )


def installed(distribution: str) -> str:
    """The installed version of ``distribution``: the one the matrix cell asked for."""
    found = version(distribution)
    wanted = os.environ.get("CHOKEPOINT_MATRIX_VERSION")
    assert wanted is None or found == wanted, f"{distribution} {found} installed, the matrix asked for {wanted}"
    return found


def get(url: str, timeout_s: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        assert response.status == 200
        return response.read()


class Traced:
    """An instrumented app and the sink it exports to (``.app``, ``.sink``)."""

    def __init__(self, source: str, workdir, env: dict, **app_options):
        self.sink = OtlpSink()
        self._source, self._workdir, self._env, self._options = source, workdir, env, app_options
        self.app: InstrumentedApp | None = None

    def __enter__(self) -> Traced:
        self.sink.start()
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.sink.endpoint,
            "OTEL_SERVICE_NAME": "matrix",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "CHOKEPOINT_TRACE_SAMPLE_RATE": "1",
            **self._env,
        }
        options = {"start_timeout_s": START_TIMEOUT_S, **self._options}
        self.app = InstrumentedApp(self._source, self._workdir, env, **options).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.app is not None:
            self.app.stop()
        self.sink.close()
        assert self.sink.errors == []

    def stderr(self) -> str:
        return self.app.stderr if self.app else ""


def check_route(
    traced: Traced,
    route: str,
    expected: list[dict],
    component: str,
    kind: int = CLIENT,
    metric: str | None = None,
    besides: tuple[str, ...] = (),
    path: str | None = None,
) -> list:
    """Call ``path`` (default ``route``; ``{n}`` replaced by each of CALLS) and check the spans of ``route``, its metrics and
    breakdown (module docstring); client spans named in ``besides`` are left out of the
    comparison (and of the queries count); returns the server spans."""
    sink = traced.sink
    for n in CALLS:
        try:
            get(traced.app.url((path or route).replace("{n}", str(n))))
        except OSError as exc:  # the app's own error, not the harness's
            traced.app.stop()
            raise AssertionError(f"{route}: {exc}\n{traced.stderr()[-4000:]}") from exc
    template = route
    sink.wait_for(lambda s: len(s.spans(f"GET {template}")) == len(CALLS), timeout_s=WAIT_S)
    breakdown = signals.REQUEST_BREAKDOWN_TIME

    def component_time(s) -> float:
        return sum(p.value for p in s.points(breakdown) if p.attributes.get("http.route") == template and p.attributes.get("chokepoint.component") == component)

    try:
        sink.wait_for(lambda s: component_time(s) > 0, timeout_s=WAIT_S)
    except AssertionError as exc:  # say what did arrive
        seen = [(p.attributes, p.value) for p in sink.points(breakdown) if p.attributes.get("http.route") == template]
        spans = [(s.name, s.kind, s.attributes) for s in sink.spans() if s.trace_id in {t.trace_id for t in sink.spans(f"GET {template}")}]
        raise AssertionError(f"{route}: no {component!r} time in the breakdown; breakdown points {seen}; spans {spans}") from exc
    servers = sink.spans(f"GET {template}")
    server_ids = {server.span_id for server in servers}
    left_out = [s for s in sink.spans() if s.parent_span_id in server_ids and s.name in besides]
    for server in servers:
        assert server.kind == SERVER and server.attributes["http.response.status_code"] == 200
        children = [s for s in sink.spans() if s.parent_span_id == server.span_id and s.kind in (CLIENT, PRODUCER) and s.name not in besides]
        children.sort(key=lambda c: c.start_unix_nano)  # the calls' order, whatever order they were exported in
        shown = [{key: c.name if key == "name" else c.attributes.get(key) for key in want} for c, want in zip(children, expected, strict=False)]
        assert shown == expected and len(children) == len(expected), (
            f"{route}: {[(c.name, c.attributes) for c in children]} != {expected}\n{traced.stderr()[-3000:]}"
        )
        assert all(c.kind == kind and c.trace_id == server.trace_id for c in children)
    statements = [e for e in expected if set(DB_KEYS) <= set(e)]
    if statements:
        wanted = [(e["db.system.name"], e["db.query.text"]) for e in statements]
        for system, text in dict.fromkeys(wanted):
            per_call = wanted.count((system, text))
            sink.wait_for(
                lambda s, system=system, text=text, per_call=per_call: [
                    p
                    for p in s.points(signals.DB_CLIENT_OPERATION_DURATION)
                    if p.attributes.get("db.system.name") == system and p.attributes.get("db.query.text") == text and p.count >= len(CALLS) * per_call
                ],
                timeout_s=WAIT_S,
            )
        sink.wait_for(
            lambda s: [p for p in s.points(signals.REQUEST_DB_QUERIES) if p.attributes == {"http.route": template} and p.count == len(CALLS)], timeout_s=WAIT_S
        )
        (queries,) = [p for p in sink.points(signals.REQUEST_DB_QUERIES) if p.attributes == {"http.route": template}]
        assert (queries.count, queries.total - len(left_out)) == (len(CALLS), len(CALLS) * len(statements))
    if metric is not None:
        sink.wait_for(lambda s: sum(p.count for p in s.points(metric)) >= len(CALLS) * len(expected), timeout_s=WAIT_S)
    return servers


def check_http_client(traced: Traced, downstream, route: str, downstream_path: str) -> None:
    """``check_route`` for an outbound HTTP call to ``downstream`` (``instrumented_app.Downstream``):
    one ``GET`` client span per request, ``http.client.request.duration``, ``http:127.0.0.1``
    in the breakdown, and the request's trace context carried in ``traceparent``."""
    expected = {"name": "GET", "http.request.method": "GET", "server.address": "127.0.0.1", "server.port": downstream.port, "http.response.status_code": 200}
    servers = check_route(traced, route, [expected], component="http:127.0.0.1", metric=signals.HTTP_CLIENT_DURATION)
    carried = {headers.get("traceparent", "--").split("-")[1] for path, headers in downstream.requests if path.startswith(downstream_path)}
    assert {s.trace_id for s in servers} <= carried, downstream.requests
