"""REST API and ``/metrics`` of the collector (default 127.0.0.1:8787).

Endpoints (JSON; full reference with examples in docs/API.md)::

    GET /api/v1/health               status, counts, and "blind_spots" (what the agents report they cannot see)
    GET /api/v1/services?window=60
    GET /api/v1/endpoints?service=&window=60
    GET /api/v1/dependencies?window=60
    GET /api/v1/pools
    GET /api/v1/breakers
    GET /api/v1/consumer-lag
    GET /api/v1/bottlenecks?window=60
    GET /api/v1/traces?route=&slow=1&limit=50
    GET /api/v1/timeseries?metric=&service=&target=&window=3600
    GET /api/v1/histogram?service=&route=&window=60
    GET /api/v1/heatmap?service=&route=&window=3600
    GET /api/v1/breakdown?service=&route=&window=60
    GET /metrics                     Prometheus text (OpenMetrics when asked via Accept)

Parameters are validated: an unknown parameter, a missing required one, a window
outside ``0 < window <= MAX_WINDOW_S``, a ``limit`` outside 1..1000, a ``slow`` that is
not 0/1/true/false, an unknown ``metric`` → ``400 {"error": "message"}``.  With a token
configured (``CHOKEPOINT_TOKEN``) every endpoint, ``/metrics`` included, needs
``Authorization: Bearer <token>`` → otherwise ``401 {"error": ...}``.  Any failure inside the
store answers ``500 {"error": ...}`` (logged), never a crash.

Each answer has the shape :mod:`chokepoint.semconv.rest` declares (``RESOURCES``: the key a
list is wrapped under, the ``TypedDict`` of its rows), the module the dashboards' client reads
with.  Handlers are plain functions, run by Starlette on its thread pool, so a slow query
never blocks the event loop that also serves OTLP/HTTP.

Usage::

    registry = CollectorRegistry(); registry.register(StoreCollector(store))
    app = create_api_app(store, registry, auth=BearerAuth(token), findings=analyzer_fn)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chokepoint.collector.auth import UNAUTHORIZED_MESSAGE, BearerAuth
from chokepoint.collector.semconv import canonical_route
from chokepoint.semconv.rest import RESOURCES, Timeseries

log = logging.getLogger(__name__)

MAX_WINDOW_S = 7 * 86400.0
MAX_TRACES_LIMIT = 1000
MAX_NAME_CHARS = 512

try:  # the core's list of series names; kept in one place (store.py)
    from chokepoint.collector.store import TIMESERIES_METRICS
except ImportError:  # pragma: no cover - store not built yet
    TIMESERIES_METRICS = ()


class BadRequest(ValueError):
    """A query parameter is wrong; ``str()`` is the message for the client."""


# ------------------------------------------------------------------ parameter parsing


def _check_known(request: Request, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params.keys()) - set(allowed))
    if unknown:
        hint = ", ".join(allowed) if allowed else "none"
        raise BadRequest(f"unknown parameter {unknown[0]!r} (allowed: {hint})")


def _given(request: Request, name: str) -> str | None:
    """The parameter's text, or None when it is absent or empty."""
    raw = request.query_params.get(name)
    return None if raw is None or raw == "" else raw


def _convert(raw: str, convert: Callable[[str], object], what: str):
    try:
        return convert(raw)
    except ValueError:
        raise BadRequest(f"{what}, got {raw!r}") from None


def window_param(request: Request, default: float) -> float:
    raw = _given(request, "window")
    if raw is None:
        return default
    value = _convert(raw, float, "window must be a number of seconds")
    if not math.isfinite(value) or value <= 0 or value > MAX_WINDOW_S:
        raise BadRequest(f"window must be > 0 and <= {MAX_WINDOW_S:.0f} seconds, got {raw!r}")
    return value


def name_param(request: Request, name: str, required: bool = False) -> str | None:
    raw = _given(request, name)
    if raw is None:
        if required:
            raise BadRequest(f"parameter {name!r} is required")
        return None
    if len(raw) > MAX_NAME_CHARS:
        raise BadRequest(f"{name} is longer than {MAX_NAME_CHARS} characters")
    return raw


def bool_param(request: Request, name: str) -> bool:
    raw = _given(request, name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise BadRequest(f"{name} must be 0/1/true/false, got {raw!r}")


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = _given(request, name)
    if raw is None:
        return default
    value = _convert(raw, int, f"{name} must be an integer")
    if not low <= value <= high:
        raise BadRequest(f"{name} must be {low}..{high}, got {value}")
    return value


ROUTE_PARAMS = ("service", "route", "window")


def _route_query(request: Request, default_window_s: float) -> tuple[str, str, float]:
    """``(service, route, window_s)`` of a per-route query (service and route required)."""
    route = canonical_route(name_param(request, "route", True))  # "api/articles" finds "/api/articles"
    return name_param(request, "service", True), route, window_param(request, default_window_s)


# ------------------------------------------------------------------ the app


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=headers)


class RestApi:
    def __init__(
        self,
        store,
        registry: CollectorRegistry | None = None,
        auth: BearerAuth | None = None,
        findings: Callable[[float], list[dict]] | None = None,
        timeseries_metrics: tuple[str, ...] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.auth = auth or BearerAuth(None)
        self.findings = findings
        self.timeseries_metrics = tuple(timeseries_metrics if timeseries_metrics is not None else TIMESERIES_METRICS)

    def routes(self) -> list[Route]:
        table: list[tuple[str, tuple[str, ...], Callable]] = [
            # (path, parameters, the rows or object: wrapped as RESOURCES[path] says)
            ("health", (), lambda r: self.store.health()),
            ("services", ("window",), lambda r: self.store.services(window_s=window_param(r, 60))),
            ("endpoints", ("service", "window"), lambda r: self.store.endpoints(name_param(r, "service"), window_s=window_param(r, 60))),
            ("dependencies", ("window",), lambda r: self.store.dependencies(window_s=window_param(r, 60))),
            ("pools", (), lambda r: self.store.pools()),
            ("breakers", (), lambda r: self.store.breakers()),
            ("consumer-lag", (), lambda r: self.store.consumer_lag()),
            ("bottlenecks", ("window",), self._bottlenecks),
            ("traces", ("route", "slow", "limit"), self._traces),
            ("timeseries", ("metric", "service", "target", "window"), self._timeseries),
            ("histogram", ROUTE_PARAMS, lambda r: self.store.histogram(*_route_query(r, 60))),
            ("heatmap", ROUTE_PARAMS, lambda r: self.store.heatmap(*_route_query(r, 3600))),
            ("breakdown", ROUTE_PARAMS, lambda r: self.store.breakdown(*_route_query(r, 60))),
        ]
        routes = [Route(f"/api/v1/{path}", self._endpoint(path, allowed, fn), methods=["GET"]) for path, allowed, fn in table]
        routes.append(Route("/metrics", self._metrics, methods=["GET"]))
        return routes

    def _refusal(self, request: Request) -> Response | None:
        """401 unless the request carries the configured token (None when allowed)."""
        if self.auth.allows(request.headers.get("authorization")):
            return None
        return _error(401, UNAUTHORIZED_MESSAGE, {"WWW-Authenticate": "Bearer"})

    def _endpoint(self, path: str, allowed: tuple[str, ...], fn: Callable[[Request], object]):
        wrap = RESOURCES[path].wrap

        def endpoint(request: Request) -> Response:
            if refused := self._refusal(request):
                return refused
            try:
                _check_known(request, allowed)
                return JSONResponse(wrap(fn(request)))
            except BadRequest as exc:
                return _error(400, str(exc))
            except Exception:
                log.exception("GET /api/v1/%s failed", path)
                return _error(500, f"internal error while answering /api/v1/{path} (see the collector log)")

        endpoint.__name__ = "api_" + path.replace("-", "_")
        return endpoint

    def _bottlenecks(self, request: Request) -> list[dict]:
        window_s = window_param(request, 60)
        return list(self.findings(window_s)) if self.findings else []

    def _traces(self, request: Request) -> list[dict]:
        route = name_param(request, "route")
        route = canonical_route(route) if route else route
        slow_only = bool_param(request, "slow")
        limit = int_param(request, "limit", 50, 1, MAX_TRACES_LIMIT)
        return self.store.traces(route=route, slow_only=slow_only, limit=limit)

    def _timeseries(self, request: Request) -> Timeseries:
        metric = name_param(request, "metric", required=True)
        if self.timeseries_metrics and metric not in self.timeseries_metrics:
            raise BadRequest(f"unknown metric {metric!r} (one of: {', '.join(self.timeseries_metrics)})")
        series = self.store.timeseries(
            metric, service=name_param(request, "service"), target=name_param(request, "target"), window_s=window_param(request, 3600)
        )
        return Timeseries(metric=metric, series=series)

    def _metrics(self, request: Request) -> Response:
        if refused := self._refusal(request):
            return refused
        if self.registry is None:
            return _error(404, "no metrics registry configured")
        try:
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            return Response(encoder(self.registry), 200, headers={"Content-Type": content_type})
        except Exception:
            log.exception("GET /metrics failed")
            return _error(500, "internal error while collecting metrics (see the collector log)")


def create_api_app(store, *args, **options) -> Starlette:
    """The Starlette app of :class:`RestApi` (same arguments: registry, auth, findings, timeseries_metrics); ``app.state.api`` is it."""
    api = RestApi(store, *args, **options)
    app = Starlette(routes=api.routes())

    async def not_found(request: Request, exc) -> Response:
        return _error(404, f"no endpoint {request.url.path} (see docs/API.md)")

    async def not_allowed(request: Request, exc) -> Response:
        return _error(405, f"{request.method} not allowed on {request.url.path}: GET only")

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    app.state.api = api
    return app
