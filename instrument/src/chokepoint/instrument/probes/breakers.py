"""Circuit-breaker probes: pybreaker, aiobreaker and the ``circuitbreaker`` package.

Reported per breaker (attribute ``chokepoint.breaker.name``):

``chokepoint.breaker.state``        gauge, index in ``signals.BREAKER_STATES`` (0 closed, 1 half_open, 2 open)
``chokepoint.breaker.transitions``  counter, attributes ``chokepoint.breaker.from_state`` / ``to_state``
``chokepoint.breaker.calls``        counter, ``chokepoint.breaker.result`` = success | failure | rejected

``rejected`` is a call the breaker refused without running it (``CircuitBreakerError``
from an open breaker); the call that trips the breaker counts as a ``failure``.

How breakers are found:

- **pybreaker** (probe ``pybreaker``) and **aiobreaker** (probe ``aiobreaker``): a
  ``CircuitBreakerListener`` is attached to every breaker created after install
  (patched ``__init__``) and to older breakers on their first call (patched ``call``),
  which is also where rejections are seen.  Unnamed breakers are called
  ``pybreaker-N`` / ``aiobreaker-N`` in the order they are found.
- **circuitbreaker** (probe ``circuitbreaker``): breakers register themselves in
  ``CircuitBreakerMonitor`` when they decorate a function (so older ones are found
  too); results come from its ``__exit__``, rejections from ``CircuitBreakerError``.
  Its half-open state is implicit (open + recovery timeout elapsed); transitions are
  counted when the probe sees the state change (at a call or at collection).
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import weakref
from typing import Any

from opentelemetry.metrics import Observation

from chokepoint.instrument import signals
from chokepoint.instrument.probes.patching import BaseProbe, ProbeUnavailable, report_error

_STATE_INDEX = {name: i for i, name in enumerate(signals.BREAKER_STATES)}

# Set by the outermost patched ``call`` of a breaker to ``(breaker, [False])``; our
# listener's before_call for that breaker flips the flag, so a CircuitBreakerError with
# the flag unset means "rejected, never ran".  A nested call of the same breaker
# (pybreaker's open → half-open retry) passes through; another breaker gets its own box.
_call_box: contextvars.ContextVar[tuple[Any, list[bool]] | None] = contextvars.ContextVar("chokepoint_breaker_call", default=None)


def state_name(state: Any) -> str:
    """``'half-open'`` / ``CircuitBreakerState.HALF_OPEN`` / ``'half_open'`` → ``'half_open'``."""
    raw = getattr(state, "name", state)
    return str(raw).lower().replace("-", "_")


class _BreakerProbe(BaseProbe):
    """Registry of breakers with their names, plus the three instruments."""

    def __init__(self, meter) -> None:
        super().__init__(meter)
        self.breakers: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.transitions = self.instruments.counter(signals.BREAKER_TRANSITIONS, "{transition}", "Breaker state changes")
        self.calls = self.instruments.counter(signals.BREAKER_CALLS, "{call}", "Calls through breakers by result")
        self.observe(signals.BREAKER_STATE, "1", "Breaker state: 0 closed, 1 half_open, 2 open", self._states)

    def breaker_name(self, breaker: Any) -> str:
        name = self.breakers.get(breaker)
        if name is None:
            with self._lock:
                given = getattr(breaker, "name", None)
                name = self.breakers.setdefault(breaker, str(given) if given else f"{self.name}-{next(self._numbers)}")
        return name

    def count_call(self, breaker: Any, result: str) -> None:
        try:
            self.calls.add(1, {signals.ATTR_BREAKER_NAME: self.breaker_name(breaker), signals.ATTR_BREAKER_RESULT: result})
        except Exception:
            report_error(f"{self.name}.count_call")

    def count_transition(self, breaker: Any, old: Any, new: Any) -> None:
        try:
            attrs = {
                signals.ATTR_BREAKER_NAME: self.breaker_name(breaker),
                signals.ATTR_BREAKER_FROM: state_name(old),
                signals.ATTR_BREAKER_TO: state_name(new),
            }
            self.transitions.add(1, attrs)
        except Exception:
            report_error(f"{self.name}.count_transition")

    def current_state(self, breaker: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _states(self):
        for breaker, name in list(self.breakers.items()):
            try:
                index = _STATE_INDEX[state_name(self.current_state(breaker))]
            except Exception:
                report_error(f"{self.name}.state")
                continue
            yield Observation(index, {signals.ATTR_BREAKER_NAME: name})


class _ListenerBreakerProbe(_BreakerProbe):
    """pybreaker and aiobreaker share a design: listeners + ``call`` / ``call_async``."""

    module_name = ""

    def __init__(self, meter) -> None:
        try:
            module = __import__(self.module_name)
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs {self.module_name}: {e}") from e
        super().__init__(meter)
        self.error_type = module.CircuitBreakerError
        self.listener = self._make_listener(module.CircuitBreakerListener)
        cls, probe = module.CircuitBreaker, self

        def wrap_init(original):
            def __init__(breaker, *args, **kwargs):
                original(breaker, *args, **kwargs)
                if probe.active:
                    probe.attach(breaker)

            return __init__

        def wrap_call(original):
            def call(breaker, func, *args, **kwargs):
                outer = _call_box.get()
                if not probe.active or (outer is not None and outer[0] is breaker):
                    return original(breaker, func, *args, **kwargs)
                probe.attach(breaker)
                ran = [False]
                token = _call_box.set((breaker, ran))
                try:
                    return original(breaker, func, *args, **kwargs)
                except probe.error_type:
                    if not ran[0]:
                        probe.count_call(breaker, "rejected")
                    raise
                finally:
                    _call_box.reset(token)

            return call

        def wrap_call_async(original):
            async def call_async(breaker, func, *args, **kwargs):
                outer = _call_box.get()
                if not probe.active or (outer is not None and outer[0] is breaker):
                    return await original(breaker, func, *args, **kwargs)
                probe.attach(breaker)
                ran = [False]
                token = _call_box.set((breaker, ran))
                try:
                    return await original(breaker, func, *args, **kwargs)
                except probe.error_type:
                    if not ran[0]:
                        probe.count_call(breaker, "rejected")
                    raise
                finally:
                    _call_box.reset(token)

            return call_async

        self.patch(cls, "__init__", wrap_init)
        self.patch(cls, "call", wrap_call)
        if self.patch_call_async:
            self.patch(cls, "call_async", wrap_call_async)

    patch_call_async = False

    def attach(self, breaker: Any) -> None:
        try:
            if breaker not in self.breakers:
                self.breaker_name(breaker)
            if self.listener not in breaker.listeners:
                breaker.add_listener(self.listener)
        except Exception:
            report_error(f"{self.name}.attach")

    def on_uninstall(self) -> None:
        for breaker in list(self.breakers.keys()):
            try:
                if self.listener in breaker.listeners:
                    breaker.remove_listener(self.listener)
            except Exception:
                report_error(f"{self.name}.detach")

    def _make_listener(self, base: type):
        probe = self

        class ChokepointListener(base):
            """Counts results and transitions of the breaker it is attached to."""

            def before_call(self, cb, func, *args, **kwargs):
                box = _call_box.get()
                if box is not None and box[0] is cb:
                    box[1][0] = True

            def success(self, cb):
                if probe.active:
                    probe.count_call(cb, "success")

            def failure(self, cb, exc):
                if probe.active:
                    probe.count_call(cb, "failure")

            def state_change(self, cb, old_state, new_state):
                if probe.active and old_state is not None:
                    # pybreaker state objects have .name; aiobreaker's have .state (an enum)
                    probe.count_transition(cb, getattr(old_state, "state", old_state), getattr(new_state, "state", new_state))

        return ChokepointListener()


class PyBreakerProbe(_ListenerBreakerProbe):
    name = "pybreaker"
    module_name = "pybreaker"

    def current_state(self, breaker):
        return breaker.current_state  # from storage: no listener side effects


class AioBreakerProbe(_ListenerBreakerProbe):
    name = "aiobreaker"
    module_name = "aiobreaker"
    patch_call_async = True

    def current_state(self, breaker):
        return breaker.current_state  # CircuitBreakerState enum


class CircuitBreakerPackageProbe(_BreakerProbe):
    name = "circuitbreaker"

    def __init__(self, meter) -> None:
        try:
            import circuitbreaker
        except ImportError as e:
            raise ProbeUnavailable(f"probe {self.name!r} needs circuitbreaker: {e}") from e
        super().__init__(meter)
        self.module = circuitbreaker
        self.last_state: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        probe = self

        def wrap_exit(original):
            def __exit__(breaker, exc_type, exc_value, tb):
                if not probe.active:
                    return original(breaker, exc_type, exc_value, tb)
                probe.see_state(breaker)  # catches open → half_open (timeout elapsed)
                try:
                    return original(breaker, exc_type, exc_value, tb)
                finally:
                    failed = False
                    try:
                        failed = bool(exc_type) and breaker.is_failure(exc_type, exc_value)
                    except Exception:
                        report_error("circuitbreaker.is_failure")
                    probe.count_call(breaker, "failure" if failed else "success")
                    probe.see_state(breaker)

            return __exit__

        def wrap_error_init(original):
            def __init__(error, circuit_breaker, *args, **kwargs):
                original(error, circuit_breaker, *args, **kwargs)
                if probe.active:
                    probe.count_call(circuit_breaker, "rejected")
                    probe.see_state(circuit_breaker)

            return __init__

        self.patch(circuitbreaker.CircuitBreaker, "__exit__", wrap_exit)
        self.patch(circuitbreaker.CircuitBreakerError, "__init__", wrap_error_init)
        for breaker in list(circuitbreaker.CircuitBreakerMonitor.get_circuits()):
            self.see_state(breaker)

    def see_state(self, breaker) -> None:
        try:
            self.breaker_name(breaker)
            now = state_name(breaker.state)
            before = self.last_state.get(breaker)
            self.last_state[breaker] = now
            if before is not None and before != now:
                self.count_transition(breaker, before, now)
        except Exception:
            report_error("circuitbreaker.see_state")

    def current_state(self, breaker):
        return breaker.state

    def _states(self):
        for breaker in list(self.module.CircuitBreakerMonitor.get_circuits()):
            self.see_state(breaker)
        yield from super()._states()
