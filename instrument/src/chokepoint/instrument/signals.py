"""The OTLP signal names and attributes the agent emits: :mod:`chokepoint.semconv.signals`.

The names live in the dependency-free ``chokepoint-semconv`` distribution, shared with the
collector; this module re-exports them for code that imports
``chokepoint.instrument.signals``.  New code imports ``chokepoint.semconv.signals``.
"""

from chokepoint.semconv.signals import *  # noqa: F403
