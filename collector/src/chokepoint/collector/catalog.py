"""The catalog of names the sidecar exposes: :mod:`chokepoint.semconv.catalog`.

Prometheus metrics, finding kinds, statuses and the time-series vocabulary live in the
dependency-free ``chokepoint-semconv`` distribution, shared with the dashboards; this module
re-exports them for code that imports ``chokepoint.collector.catalog``.  New code imports
``chokepoint.semconv.catalog``.
"""

from chokepoint.semconv.catalog import *  # noqa: F403
