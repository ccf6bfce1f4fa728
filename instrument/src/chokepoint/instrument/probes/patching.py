"""The plumbing every probe shares: reversible patches, a call-time ``active`` switch,
shared metric instruments, and a guard that keeps probe errors out of user code.

A probe subclasses :class:`BaseProbe`, patches with ``self.patch(owner, "attr", factory)``
(``factory(original) -> wrapper``; the wrapper is tagged with ``__wrapped__`` and
``_chokepoint_probe``), registers observable callbacks with ``self.observe(...)`` and
is undone by :meth:`BaseProbe.uninstall`.  Wrappers test ``probe.active`` on every
call, so a probe that has been uninstalled (or whose patch someone else wrapped over,
which we then cannot take back) costs one attribute read per call.

Observable instruments are shared per meter: the OpenTelemetry SDK returns the first
instrument for a repeated name and silently drops the second one's callbacks, so two
probes (SQLAlchemy and psycopg_pool both report ``db.client.connection.count``) must
feed one instrument.  :func:`instruments_for` keeps that one instrument per name.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

log = logging.getLogger("chokepoint.instrument.probes")

_MISSING = object()

# Seconds; fine at the low end where pool waits and loop lags live.
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProbeUnavailable(ImportError):
    """A probe asked for by name cannot run: its library is missing or too old."""


_reported: set[str] = set()


def report_error(where: str) -> None:
    """Log a probe's own failure once per place, at debug level after the first time."""
    level = logging.DEBUG if where in _reported else logging.WARNING
    _reported.add(where)
    log.log(level, "chokepoint probe error in %s (ignored)", where, exc_info=True)


class ObservableFamily:
    """One observable instrument fed by any number of probe callbacks."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Iterable[Observation]]] = []
        self._lock = threading.Lock()

    def add(self, source: Callable[[], Iterable[Observation]]) -> None:
        with self._lock:
            self._sources = [*self._sources, source]

    def remove(self, source: Callable[[], Iterable[Observation]]) -> None:
        with self._lock:
            self._sources = [s for s in self._sources if s is not source]

    def __call__(self, options: CallbackOptions) -> Iterable[Observation]:
        out: list[Observation] = []
        for source in self._sources:
            try:
                out.extend(source())
            except Exception:
                report_error(getattr(source, "__qualname__", repr(source)))
        return out


class _LeanHistogram:
    """SDK-shaped ``record(value, attributes)`` onto a lean histogram's ``record(value, values, keys)``."""

    __slots__ = ("_lean",)

    def __init__(self, lean: Any) -> None:
        self._lean = lean

    def record(self, amount: float, attributes: dict | None = None) -> None:
        attributes = attributes or {}
        self._lean.record(amount, tuple(attributes.values()), tuple(attributes))

    def bind(self, attributes: dict) -> Callable[[float], None]:
        return functools.partial(self._lean.record, values=tuple(attributes.values()), keys=tuple(attributes))


class _LeanCounter(_LeanHistogram):
    __slots__ = ()

    def add(self, amount: float, attributes: dict | None = None) -> None:
        attributes = attributes or {}
        self._lean.add(amount, tuple(attributes.values()), tuple(attributes))

    def bind(self, attributes: dict) -> Callable[[float], None]:
        return functools.partial(self._lean.add, values=tuple(attributes.values()), keys=tuple(attributes))


def bind(instrument: Any, attributes: dict) -> Callable[[float], None]:
    """``record(value)`` (histogram) or ``add(amount)`` (counter) with ``attributes`` fixed.

    For hot paths with a fixed attribute set (one per pool): the attribute tuples are built
    once, and the call is a ``functools.partial`` (no Python frame of its own) onto the lean
    instrument, or onto the SDK instrument's ``record`` / ``add``.
    """
    own = getattr(instrument, "bind", None)
    if own is not None:
        return own(attributes)
    method = instrument.record if hasattr(instrument, "record") else instrument.add
    return functools.partial(method, attributes=attributes)


class Instruments:
    """The instruments of one meter, created on first use and shared by all probes.

    Synchronous instruments (histograms, counters) are recorded on hot paths (every
    pool checkout, every breaker call), where the SDK's ``record`` costs several µs.
    Given a lean registry (``use_lean``: an object with ``histogram(name, unit,
    description)`` / ``counter(...)`` returning ``record(value, values, keys)`` /
    ``add(amount, values, keys)``, such as the agent's
    ``chokepoint.instrument.lean_metrics.LeanMetrics``), they are created there instead
    and exported with the agent's other lean metrics.
    """

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.lean: Any = None
        self._sync: dict[str, Any] = {}
        self._families: dict[str, ObservableFamily] = {}
        self._lock = threading.Lock()

    def use_lean(self, lean: Any) -> None:
        """Create histograms and counters in ``lean`` from now on (call before installing probes)."""
        with self._lock:
            self.lean = lean

    def histogram(self, name: str, unit: str, description: str, boundaries: tuple[float, ...] = SECONDS_BUCKETS):
        with self._lock:
            if name not in self._sync:
                if self.lean is not None:
                    self._sync[name] = _LeanHistogram(self.lean.histogram(name, unit, description))
                else:
                    self._sync[name] = self.meter.create_histogram(
                        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(boundaries)
                    )
            return self._sync[name]

    def counter(self, name: str, unit: str, description: str):
        with self._lock:
            if name not in self._sync:
                if self.lean is not None:
                    self._sync[name] = _LeanCounter(self.lean.counter(name, unit, description))
                else:
                    self._sync[name] = self.meter.create_counter(name, unit=unit, description=description)
            return self._sync[name]

    def gauge_family(self, name: str, unit: str, description: str) -> ObservableFamily:
        with self._lock:
            if name not in self._families:
                family = ObservableFamily()
                self.meter.create_observable_gauge(name, callbacks=[family], unit=unit, description=description)
                self._families[name] = family
            return self._families[name]


_by_meter: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_by_meter_lock = threading.Lock()


def instruments_for(meter: Meter) -> Instruments:
    with _by_meter_lock:
        try:
            return _by_meter[meter]
        except KeyError:
            inst = _by_meter[meter] = Instruments(meter)
            return inst
        except TypeError:  # meter type not weak-referenceable: no sharing across calls
            return Instruments(meter)


class BaseProbe:
    """A probe: ``name``, ``active``, and ``uninstall()`` that undoes everything it did."""

    name = "probe"

    def __init__(self, meter: Meter) -> None:
        self.instruments = instruments_for(meter)
        self.active = True
        self._undo: list[tuple[Any, str, Any, Any]] = []
        self._observed: list[tuple[ObservableFamily, Callable]] = []

    # ------------------------------------------------------------------ patches
    def patch(self, owner: Any, attr: str, factory: Callable[[Any], Callable]) -> None:
        """Replace ``owner.attr`` by ``factory(original)``; undone by :meth:`uninstall`."""
        own = owner.__dict__.get(attr, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        original = getattr(owner, attr)
        wrapper = factory(original)
        try:
            wrapper.__wrapped__ = original
            wrapper._chokepoint_probe = self.name
        except (AttributeError, TypeError):
            pass
        setattr(owner, attr, wrapper)
        self._undo.append((owner, attr, own, wrapper))

    def observe(self, name: str, unit: str, description: str, source: Callable[[], Iterable[Observation]]) -> None:
        """Feed the shared observable gauge ``name`` from ``source()`` while installed."""
        family = self.instruments.gauge_family(name, unit, description)

        def guarded() -> Iterable[Observation]:
            return source() if self.active else ()

        guarded.__qualname__ = f"{self.name}:{name}"
        family.add(guarded)
        self._observed.append((family, guarded))

    def uninstall(self) -> None:
        """Undo every patch, listener and callback; idempotent."""
        if getattr(self, "_uninstalled", False):
            return
        self._uninstalled = True
        self.active = False
        for owner, attr, own, wrapper in reversed(self._undo):
            try:
                current = owner.__dict__.get(attr) if hasattr(owner, "__dict__") else getattr(owner, attr, None)
                if current is not wrapper:
                    continue  # wrapped over by someone else: ours stays as an inactive pass-through
                if own is _MISSING:
                    delattr(owner, attr)
                else:
                    setattr(owner, attr, own)
            except Exception:
                report_error(f"{self.name}.uninstall")
        self._undo.clear()
        for family, source in self._observed:
            family.remove(source)
        self._observed.clear()
        self.on_uninstall()

    def on_uninstall(self) -> None:
        """Hook for probes with extra state to undo (event listeners, gc callbacks)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} active={self.active}>"
