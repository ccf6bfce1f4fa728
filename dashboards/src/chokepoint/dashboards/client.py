"""Thin client of the collector's REST API (``/api/v1``), used by the Dash pages.

The dashboards read the collector only through this client: one method per endpoint
of ../shared/CONTRACT.md (plus the time-series extensions of ``docs/API.md``), each
returning the JSON payload's list/dict as-is, typed by the shapes the collector's API
answers with (:mod:`chokepoint.semconv.rest`: the key each list is under, its rows).  Every call has a timeout; any failure
(connection refused, timeout, non-2xx answer, non-JSON body) raises
:class:`CollectorUnavailable` with a one-line message the pages show in their error
banner.

Usage::

    from chokepoint.dashboards.client import ApiClient
    api = ApiClient("http://127.0.0.1:8787", timeout_s=2.0)
    api.endpoints(window_s=60)          # -> [{"service", "route", "rps", ...}, ...]

Configuration: ``CHOKEPOINT_TOKEN`` (environment) is sent as a bearer token when set
and no ``token=`` is given.
"""

from __future__ import annotations

import os
from typing import Any

import requests

from chokepoint.semconv import rest
from chokepoint.semconv.rest import RESOURCES

API_PREFIX = rest.API_PREFIX
DEFAULT_TIMEOUT_S = 2.0


class CollectorUnavailable(RuntimeError):
    """The collector could not be reached or answered with an error."""


def _items(payload: Any, key: str) -> list:
    """The list under ``key`` (tolerates a bare list or a single-list object)."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        if key in payload:
            return payload[key] or []
        lists = [v for v in payload.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return []


class ApiClient:
    """Blocking JSON client for one collector; safe to share between threads."""

    def __init__(self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        token = token if token is not None else os.environ.get("CHOKEPOINT_TOKEN")
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> Any:
        """GET ``/api/v1/<path>`` with the non-``None`` ``params``; the decoded JSON body."""
        url = f"{self.base_url}{API_PREFIX}/{path.lstrip('/')}"
        query = {k: v for k, v in params.items() if v is not None}
        try:
            resp = requests.get(url, params=query, headers=self._headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise CollectorUnavailable(f"collector unreachable at {self.base_url}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            try:
                detail = resp.json().get("error", "")
            except ValueError:
                detail = resp.text[:200]
            raise CollectorUnavailable(f"collector answered {resp.status_code} for {path}: {detail}".rstrip(": "))
        try:
            return resp.json()
        except ValueError as exc:
            raise CollectorUnavailable(f"collector sent a non-JSON answer for {path}") from exc

    def _list(self, path: str, **params: Any) -> list:
        """The rows of ``GET /api/v1/<path>``, from under the key ``RESOURCES[path]`` names."""
        return _items(self.get(path, **params), RESOURCES[path].key)

    # ------------------------------------------------------------ CONTRACT.md endpoints
    def health(self) -> rest.Health:
        return self.get("health")

    def services(self) -> list[rest.Service]:
        return self._list("services")

    def endpoints(self, service: str | None = None, window_s: float = 60) -> list[rest.Endpoint]:
        return self._list("endpoints", service=service, window=window_s)

    def dependencies(self, window_s: float = 60) -> list[rest.Dependency]:
        return self._list("dependencies", window=window_s)

    def pools(self) -> list[rest.Pool]:
        return self._list("pools")

    def breakers(self) -> list[rest.Breaker]:
        return self._list("breakers")

    def consumer_lag(self) -> list[rest.ConsumerLag]:
        return self._list("consumer-lag")

    def bottlenecks(self, window_s: float = 60) -> list[rest.Finding]:
        return self._list("bottlenecks", window=window_s)

    def traces(self, route: str | None = None, slow_only: bool = False, limit: int = 50) -> list[rest.Trace]:
        return self._list("traces", route=route, slow=1 if slow_only else None, limit=limit)

    # ------------------------------------------------------------ docs/API.md extensions
    def timeseries(self, metric: str, service: str | None = None, target: str | None = None, window_s: float = 3600) -> list[rest.Series]:
        return _items(self.get("timeseries", metric=metric, service=service, target=target, window=window_s), "series")

    def histogram(self, service: str, route: str, window_s: float = 60) -> list[rest.HistogramBucket]:
        return self._list("histogram", service=service, route=route, window=window_s)

    def heatmap(self, service: str, route: str, window_s: float = 3600) -> rest.Heatmap:
        return self.get("heatmap", service=service, route=route, window=window_s)

    def breakdown(self, service: str, route: str, window_s: float = 60) -> rest.Breakdown:
        return self.get("breakdown", service=service, route=route, window=window_s)


class MultiApiClient:
    """The same methods over several collectors (``--api URL,URL``), answers merged.

    Lists are merged by ``chokepoint.collector.remote`` (findings ranked together, rows of one
    service combined, the rest one row per key).  A collector that does not answer is named:
    ``health()`` reports ``status`` ``"not answering: URL (reason)"`` for the banner, the other
    calls return what the others answered; only when none answers do they raise
    :class:`CollectorUnavailable`.
    """

    def __init__(self, base_urls: list[str], timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> None:
        self.clients = [ApiClient(url, timeout_s=timeout_s, token=token) for url in base_urls]
        self.base_url = ",".join(c.base_url for c in self.clients)

    def _gather(self, call):
        from chokepoint.collector.remote import gather

        merged = gather(self.clients, call, errors=(CollectorUnavailable,))
        if not merged.parts:
            raise CollectorUnavailable("; ".join(why for _c, why in merged.unreachable) or "no collector configured")
        return merged

    def _rows(self, what: str, call) -> list[dict]:
        from chokepoint.collector.remote import merge_rows

        return merge_rows(what, self._gather(call).parts)

    def health(self) -> dict:
        merged = self._gather(lambda c: c.health())
        missing = [f"{c.base_url} ({why})" for c, why in merged.unreachable]
        bad = [f"{c.base_url}: {h.get('status')!r}" for c, h in zip(merged.answered, merged.parts, strict=True) if h.get("status") != "ok"]
        status = "ok" if not missing and not bad else "; ".join([*(f"not answering: {m}" for m in missing), *bad])
        from chokepoint.collector.remote import merge_rows

        return {"status": status, "collectors": len(self.clients), "blind_spots": merge_rows("blind_spots", (h.get("blind_spots") or [] for h in merged.parts))}

    def services(self) -> list[dict]:
        return self._rows("services", lambda c: c.services())

    def endpoints(self, service: str | None = None, window_s: float = 60) -> list[dict]:
        return self._rows("endpoints", lambda c: c.endpoints(service=service, window_s=window_s))

    def dependencies(self, window_s: float = 60) -> list[dict]:
        return self._rows("dependencies", lambda c: c.dependencies(window_s=window_s))

    def pools(self) -> list[dict]:
        return self._rows("pools", lambda c: c.pools())

    def breakers(self) -> list[dict]:
        return self._rows("breakers", lambda c: c.breakers())

    def consumer_lag(self) -> list[dict]:
        return self._rows("consumer_lag", lambda c: c.consumer_lag())

    def bottlenecks(self, window_s: float = 60) -> list[dict]:
        from chokepoint.collector.remote import merge_findings

        return merge_findings(self._gather(lambda c: c.bottlenecks(window_s=window_s)).parts)

    def traces(self, route: str | None = None, slow_only: bool = False, limit: int = 50) -> list[dict]:
        return self._rows("traces", lambda c: c.traces(route=route, slow_only=slow_only, limit=limit))[:limit]

    def timeseries(self, metric: str, service: str | None = None, target: str | None = None, window_s: float = 3600) -> list[dict]:
        parts = self._gather(lambda c: c.timeseries(metric, service=service, target=target, window_s=window_s)).parts
        return [series for part in parts for series in part]

    def _first(self, call):
        """A per-service view: the answer of the collector that has the service (the first non-empty)."""
        parts = self._gather(call).parts
        return next((p for p in parts if p), parts[0])

    def histogram(self, service: str, route: str, window_s: float = 60) -> list[dict]:
        return self._first(lambda c: c.histogram(service, route, window_s=window_s))

    def heatmap(self, service: str, route: str, window_s: float = 3600) -> dict:
        return self._first(lambda c: c.heatmap(service, route, window_s=window_s))

    def breakdown(self, service: str, route: str, window_s: float = 60) -> dict:
        return self._first(lambda c: c.breakdown(service, route, window_s=window_s))


def api_client(api: str, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> ApiClient | MultiApiClient:
    """``ApiClient`` for one URL, :class:`MultiApiClient` for ``"URL,URL,..."``."""
    urls = [u.strip() for u in api.split(",") if u.strip()]
    if len(urls) > 1:
        return MultiApiClient(urls, timeout_s=timeout_s, token=token)
    return ApiClient(urls[0] if urls else api, timeout_s=timeout_s, token=token)
