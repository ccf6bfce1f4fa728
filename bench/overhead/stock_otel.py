"""Stock OpenTelemetry, as ``opentelemetry-instrument`` with ``opentelemetry-distro`` sets it up.

``python stock_otel.py uvicorn ARGS...``: the SDK's own configurator (the one
``opentelemetry-distro`` subclasses: OTLP exporters for traces and metrics, batch span
processor, periodic metric reader), then every installed instrumentor with the default
distro (no chokepoint options), then the command.  chokepoint's distro is not used.
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

_OTelSDKConfigurator().configure(auto_instrumentation_version=__version__)
_load_instrumentors(DefaultDistro())

module = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
