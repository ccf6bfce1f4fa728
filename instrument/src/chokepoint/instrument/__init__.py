"""chokepoint.instrument — the in-app agent.

Loaded into the user's application, with no code change::

    chokepoint-instrument python app.py
    chokepoint-instrument uvicorn app:app

or from code::

    from chokepoint.instrument import instrument
    instrument()

It uses the OpenTelemetry SDK and the upstream ``opentelemetry-instrumentation-*``
packages, adds the probes they lack (pools, workers, breakers, Kafka consumer lag,
runtime) and exports OTLP to the chokepoint sidecar (``127.0.0.1:4318`` by default).

This package also owns the OTLP signal names and attributes that cross from app to
sidecar; it stays light so the collector may import them.
"""

from __future__ import annotations


def instrument(*args, **kwargs):
    """Set up the agent from code; see :func:`chokepoint.instrument.agent.instrument`.

    Imported lazily so that ``chokepoint.instrument.signals`` stays light for the collector.
    """
    from chokepoint.instrument.agent import instrument as _instrument

    return _instrument(*args, **kwargs)


__all__ = ["instrument"]
