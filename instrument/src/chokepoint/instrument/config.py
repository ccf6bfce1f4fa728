"""Agent configuration, read from ``CHOKEPOINT_*`` and standard ``OTEL_*`` variables.

Usage::

    from chokepoint.instrument.config import AgentConfig
    config = AgentConfig.from_env()          # os.environ; problems -> config.problems
    config = AgentConfig.from_env({"CHOKEPOINT_TRACE_SAMPLE_RATE": "0.1"})

A bad value never stops the app: it is reported (one clear line in ``problems``, logged
by the agent at start-up) and the default is used instead.

Variables (default in brackets):

==================================  =====================================================
``CHOKEPOINT_ENABLED``              ``false`` turns the agent off entirely [true]
``CHOKEPOINT_TRACE_SAMPLE_RATE``    fraction of traces kept at random, 0..1 [0.05]
``CHOKEPOINT_SLOW_PERCENTILE``      a trace above the route's rolling percentile is kept [95]
``CHOKEPOINT_SLOW_FLOOR_MS``        a trace above this is always slow [1000]
``CHOKEPOINT_SLOW_MIN_SAMPLES``     samples per route before the percentile applies [50]
``CHOKEPOINT_EXPORT_QUEUE_SPANS``   bounded export queue; overflow is dropped and counted [20000]
``CHOKEPOINT_EXPORT_DELAY_MS``      kept traces wait this long to share one export [1000]
``CHOKEPOINT_MAX_OPEN_TRACES``      traces buffered at once; overflow counted [10000]
``CHOKEPOINT_MAX_SPANS_PER_TRACE``  spans buffered per trace; overflow counted [1000]
``CHOKEPOINT_PROBES``               ``all``, ``none`` or a comma list of probe names [all]
``CHOKEPOINT_HEADER_ALLOWLIST``     extra header names kept on exported spans [none]
``CHOKEPOINT_REPEATED_READ_WINDOW_S`` window for "same read seen again" [10]
``CHOKEPOINT_ASGI``                 ``lean`` (chokepoint's server spans for FastAPI/Starlette)
                                    or ``upstream`` (the OpenTelemetry instrumentors) [lean]
``CHOKEPOINT_SQLALCHEMY``           ``lean`` (cached attributes on the upstream SQLAlchemy
                                    instrumentor's hot path) or ``upstream`` [lean]
``CHOKEPOINT_SQLALCHEMY_SPANS``     with the lean path: ``dialect`` (statement spans from the
                                    engine dialect's execute methods, no engine listeners)
                                    or ``listeners`` (the instrumentor's engine events)
                                    [dialect] (read by ``sqlalchemy_lean``)
``CHOKEPOINT_HTTPX``                ``lean`` (chokepoint's httpx client spans, the upstream
                                    span from one transport wrapper) or ``upstream`` [lean]
``CHOKEPOINT_REQUESTS``             ``lean`` (chokepoint's ``requests`` client spans, installed
                                    by the distro) or ``upstream`` [lean]
``CHOKEPOINT_URLLIB3``              ``lean`` (chokepoint's urllib3 client spans, installed by
                                    the distro) or ``upstream`` [lean].  The
                                    plan decides from these switches
                                    (:mod:`chokepoint.instrument.plan`)
``CHOKEPOINT_SPANS``                ``lean`` (spans the chokepoint processor reads as they are;
                                    SDK spans only for kept traces, at export) or ``sdk``
                                    (the SDK's spans; also whenever another span processor
                                    is registered) [lean]
``CHOKEPOINT_GC_FREEZE``            ``true``: ``gc.freeze()`` once the agent is set up, before
                                    the app is imported, so full collections no longer
                                    scan the agent's (and the already imported libraries')
                                    objects; frozen objects are invisible to
                                    ``gc.get_objects()`` [false]
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``  libraries left uninstrumented (``*``: all) [none]
``OTEL_SEMCONV_STABILITY_OPT_IN``   ``http`` (set by the agent when unset): chokepoint's own
                                    HTTP client spans; ``http/dup`` or none: upstream's
``OTEL_SERVICE_NAME``               service name [the program name]
``OTEL_EXPORTER_OTLP_ENDPOINT``     OTLP/HTTP base URL [http://127.0.0.1:4318]
``OTEL_METRIC_EXPORT_INTERVAL``     metric export period in ms [5000]
``OTEL_EXPORTER_OTLP_TIMEOUT``      per-export timeout in s [5]
==================================  =====================================================

Metrics use **cumulative** temporality (the OpenTelemetry default): a failed export
while the sidecar is down loses nothing, the next successful export carries the totals.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _default_service_name() -> str:
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return argv0.removesuffix(".py") or "python-app"


@dataclass(frozen=True)
class AgentConfig:
    enabled: bool = True
    service_name: str = "python-app"
    endpoint: str = DEFAULT_ENDPOINT
    trace_sample_rate: float = 0.05
    slow_percentile: float = 95.0
    slow_floor_ms: float = 1000.0
    slow_min_samples: int = 50
    export_queue_spans: int = 20000
    export_delay_ms: float = 1000.0
    max_open_traces: int = 10000
    max_spans_per_trace: int = 1000
    probes: frozenset[str] | None = None  # None = all
    header_allowlist: frozenset[str] = frozenset()
    repeated_read_window_s: float = 10.0
    asgi: str = "lean"
    sqlalchemy: str = "lean"
    httpx: str = "lean"
    requests: str = "lean"
    urllib3: str = "lean"
    spans: str = "lean"
    gc_freeze: bool = False
    disabled_instrumentations: frozenset[str] = frozenset()
    http_semconv: str = "http"
    metric_export_interval_ms: int = 5000
    export_timeout_s: float = 5.0
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def traces_url(self) -> str:
        return self.endpoint.rstrip("/") + "/v1/traces"

    @property
    def metrics_url(self) -> str:
        return self.endpoint.rstrip("/") + "/v1/metrics"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AgentConfig:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        probes_raw = env.get("CHOKEPOINT_PROBES", "all").strip().lower()
        if probes_raw in ("", "all"):
            probes = None
        elif probes_raw == "none":
            probes = frozenset()
        else:
            probes = frozenset(p.strip() for p in probes_raw.split(",") if p.strip())
        config = cls(
            enabled=reader.boolean("CHOKEPOINT_ENABLED", True),
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or _default_service_name(),
            endpoint=reader.url("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT),
            trace_sample_rate=reader.number("CHOKEPOINT_TRACE_SAMPLE_RATE", 0.05, 0.0, 1.0),
            slow_percentile=reader.number("CHOKEPOINT_SLOW_PERCENTILE", 95.0, 1.0, 100.0),
            slow_floor_ms=reader.number("CHOKEPOINT_SLOW_FLOOR_MS", 1000.0, 0.0, None),
            slow_min_samples=int(reader.number("CHOKEPOINT_SLOW_MIN_SAMPLES", 50, 1, None)),
            export_queue_spans=int(reader.number("CHOKEPOINT_EXPORT_QUEUE_SPANS", 20000, 1, None)),
            export_delay_ms=reader.number("CHOKEPOINT_EXPORT_DELAY_MS", 1000.0, 0.0, None),
            max_open_traces=int(reader.number("CHOKEPOINT_MAX_OPEN_TRACES", 10000, 1, None)),
            max_spans_per_trace=int(reader.number("CHOKEPOINT_MAX_SPANS_PER_TRACE", 1000, 1, None)),
            probes=probes,
            header_allowlist=frozenset(h.strip().lower().replace("_", "-") for h in env.get("CHOKEPOINT_HEADER_ALLOWLIST", "").split(",") if h.strip()),
            repeated_read_window_s=reader.number("CHOKEPOINT_REPEATED_READ_WINDOW_S", 10.0, 0.0, None),
            asgi=reader.choice("CHOKEPOINT_ASGI", "lean", ("lean", "upstream")),
            sqlalchemy=reader.choice("CHOKEPOINT_SQLALCHEMY", "lean", ("lean", "upstream")),
            httpx=reader.choice("CHOKEPOINT_HTTPX", "lean", ("lean", "upstream")),
            requests=reader.choice("CHOKEPOINT_REQUESTS", "lean", ("lean", "upstream")),
            urllib3=reader.choice("CHOKEPOINT_URLLIB3", "lean", ("lean", "upstream")),
            spans=reader.choice("CHOKEPOINT_SPANS", "lean", ("lean", "sdk")),
            gc_freeze=reader.boolean("CHOKEPOINT_GC_FREEZE", False),
            disabled_instrumentations=frozenset(n.strip() for n in env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",") if n.strip()),
            http_semconv=http_semconv_mode(env),
            metric_export_interval_ms=int(reader.number("OTEL_METRIC_EXPORT_INTERVAL", 5000, 100, None)),
            export_timeout_s=reader.number("OTEL_EXPORTER_OTLP_TIMEOUT", 5.0, 0.1, None),
            problems=(),
        )
        return _with_problems(config, tuple(reader.problems))


def http_semconv_mode(environ: Mapping[str, str]) -> str:
    """``"http"``, ``"http/dup"`` or ``"default"``, as upstream reads ``OTEL_SEMCONV_STABILITY_OPT_IN``."""
    opt_in = [part.strip() for part in (environ.get("OTEL_SEMCONV_STABILITY_OPT_IN") or "").split(",")]
    if "http/dup" in opt_in:
        return "http/dup"
    return "http" if "http" in opt_in else "default"


def _with_problems(config: AgentConfig, problems: tuple[str, ...]) -> AgentConfig:
    object.__setattr__(config, "problems", problems)
    return config


class _Reader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None or not raw.strip():
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        self.problems.append(f"{name}={raw!r} is not a boolean (true/false); using {str(default).lower()}")
        return default

    def number(self, name: str, default: float, low: float | None, high: float | None) -> float:
        raw = self.env.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number; using {default}")
            return default
        if value != value or (low is not None and value < low) or (high is not None and value > high):
            bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
            self.problems.append(f"{name}={raw!r} is outside {bounds}; using {default}")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self.env.get(name)
        if raw is None or not raw.strip():
            return default
        value = raw.strip().lower()
        if value not in allowed:
            self.problems.append(f"{name}={raw!r} must be one of {', '.join(allowed)}; using {default}")
            return default
        return value

    def url(self, name: str, default: str) -> str:
        raw = self.env.get(name)
        if raw is None or not raw.strip():
            return default
        value = raw.strip()
        if not value.startswith(("http://", "https://")):
            self.problems.append(f"{name}={raw!r} must start with http:// or https://; using {default}")
            return default
        return value
