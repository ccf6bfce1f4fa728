"""Stock OpenTelemetry, as ``opentelemetry-instrument`` with ``opentelemetry-distro`` sets it up.

``python stock_otel.py uvicorn ARGS...`` (a module) or ``python stock_otel.py script.py
ARGS...`` (a file): the SDK's own configurator (the one ``opentelemetry-distro``
subclasses: OTLP exporters for traces and metrics, batch span processor, periodic metric
reader), then every installed instrumentor with the default distro (no chokepoint
options), then the command.  chokepoint's distro is not used.

``OTEL_SDK_DISABLED=true`` (the ``otel-noop`` benchmark variant) keeps every instrumentor's
wrappers but makes the SDK's tracer and meter providers hand out no-op tracers and meters:
the cost of the upstream instrumentation alone, with nothing recorded or exported.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` is honoured as usual.  ``BENCH_FASTAPI_NATIVE_TELEMETRY=false``
turns FastAPI's own telemetry off (FastAPI >= 0.163 makes its own server and operation
spans, next to the upstream instrumentor's, once a global provider is set).
"""

from __future__ import annotations

import os
import runpy
import sys

os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
os.environ.setdefault("OTEL_METRICS_EXPORTER", "otlp")
os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
from opentelemetry.instrumentation.distro import DefaultDistro
from opentelemetry.instrumentation.version import __version__
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

if os.environ.get("BENCH_FASTAPI_NATIVE_TELEMETRY", "").strip().lower() == "false":
    from fastapi.telemetry._asgi import NativeTelemetry

    NativeTelemetry.enabled = lambda self: False

_OTelSDKConfigurator().configure(auto_instrumentation_version=__version__)
_load_instrumentors(DefaultDistro())

target = sys.argv[1]
sys.argv = sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
