"""Bottleneck switches: which real cause each demo process injects, set at start or at runtime.

Every process of the demo (``shop.app``, ``shop.payment``, ``shop.fulfilment``) keeps a
:class:`Switches` holding the switches it *owns* (``OWNERS``).  They are set

- at start from the environment variable ``SHOP_SWITCHES`` (or the ``--switches`` flag):
  a comma-separated list of names, e.g. ``SHOP_SWITCHES=slow_query,n_plus_one``.  Every
  name must be one of :data:`SWITCH_NAMES` (a typo is an error that stops the process
  with a clear message); each process keeps the names it owns and ignores the others,
  so the same variable can be given to all three processes;
- at runtime through the admin endpoints (:func:`admin_router`)::

      GET  /admin/switches             -> {"service": "shop", "switches": {"slow_query": false, ...}}
      POST /admin/switches  {"slow_query": true, "n_plus_one": false}
                                       -> the new state; 422 (and nothing changed) when a name
                                          is unknown, not owned by this process, or not a bool

Switch names are the bottleneck kinds of chokepoint's analyzer, one switch per kind.  What
each one does is documented where it is implemented (``shop.app``, ``shop.payment``,
``shop.fulfilment``) and in ``examples/README.md``.  Some switches take part in two
processes (``retry_storm``, ``missing_timeout``): the shop turns on the client-side cause,
the payment service the dependency behaviour that makes it visible.

A process may register ``on_change(name, on)`` callbacks, called after a switch flips
(the shop resizes its worker pool that way).

Switches can be *unavailable* in a process, with the reason (``Switches(...,
unavailable={"consumer_lag": "..."})``): the shop run without Kafka has no consumer group
to make lag in.  Naming one at start (``SHOP_SWITCHES``) is an error that stops the
process, setting one at runtime is refused with 422; both messages give the reason, and
``GET /admin/switches`` lists them under ``unavailable``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from fastapi import APIRouter, HTTPException

ENV_VAR = "SHOP_SWITCHES"

#: Every switch, in the order of the analyzer's bottleneck kinds.
SWITCH_NAMES: tuple[str, ...] = (
    "worker_pool_saturation",
    "cpu_saturation",
    "event_loop_blocked",
    "db_pool_saturation",
    "slow_query",
    "n_plus_one",
    "connection_held_during_external_call",
    "external_dependency_slow",
    "circuit_open",
    "retry_storm",
    "missing_timeout",
    "consumer_lag",
    "hot_endpoint",
    "memory_pressure",
    "uncompressed_response",
    "cacheable_reads",
    "http_pool_saturation",
)

#: Which process owns (acts on) which switch.
OWNERS: dict[str, tuple[str, ...]] = {
    "shop": (
        "worker_pool_saturation",
        "cpu_saturation",
        "event_loop_blocked",
        "db_pool_saturation",
        "slow_query",
        "n_plus_one",
        "connection_held_during_external_call",
        "retry_storm",
        "missing_timeout",
        "hot_endpoint",
        "memory_pressure",
        "uncompressed_response",
        "cacheable_reads",
        "http_pool_saturation",
    ),
    "payment": ("external_dependency_slow", "circuit_open", "retry_storm", "missing_timeout"),
    "fulfilment": ("consumer_lag",),
}


class SwitchError(ValueError):
    """A switch name or value that cannot be applied; the message says why."""


def parse_switch_list(text: str | None) -> tuple[str, ...]:
    """``"a, b,,a"`` -> ``("a", "b")``; raises :class:`SwitchError` naming any unknown switch."""
    names: list[str] = []
    for raw in (text or "").split(","):
        name = raw.strip()
        if not name or name in names:
            continue
        if name not in SWITCH_NAMES:
            raise SwitchError(f"unknown switch {name!r} in {ENV_VAR}; known switches: {', '.join(SWITCH_NAMES)}")
        names.append(name)
    return tuple(names)


def owner_of(name: str) -> tuple[str, ...]:
    """The processes that act on switch ``name``."""
    return tuple(service for service, names in OWNERS.items() if name in names)


class Switches:
    """The on/off state of one process's switches; thread-safe, reads are lock-free."""

    def __init__(self, service: str, enabled: Iterable[str] = (), unavailable: Mapping[str, str] | None = None) -> None:
        if service not in OWNERS:
            raise SwitchError(f"unknown service {service!r}; one of {', '.join(OWNERS)}")
        self.service = service
        self.unavailable: dict[str, str] = dict(unavailable or {})
        for name in self.unavailable:
            if name not in SWITCH_NAMES:
                raise SwitchError(f"unknown switch {name!r}; known switches: {', '.join(SWITCH_NAMES)}")
        self.owned: tuple[str, ...] = OWNERS[service]
        self._state: dict[str, bool] = dict.fromkeys(self.owned, False)
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[str, bool], None]] = []
        self.ignored: tuple[str, ...] = ()
        ignored = []
        for name in enabled:
            if name not in SWITCH_NAMES:
                raise SwitchError(f"unknown switch {name!r}; known switches: {', '.join(SWITCH_NAMES)}")
            if name in self.unavailable:
                raise SwitchError(self._unavailable_message(name))
            if name in self._state:
                self._state[name] = True
            else:
                ignored.append(name)
        self.ignored = tuple(ignored)

    @classmethod
    def from_text(cls, service: str, text: str | None, unavailable: Mapping[str, str] | None = None) -> Switches:
        """Switches of ``service`` from a ``SHOP_SWITCHES``-style list (names owned elsewhere are ignored)."""
        return cls(service, parse_switch_list(text), unavailable)

    def _unavailable_message(self, name: str) -> str:
        return f"switch {name!r} is unavailable here: {self.unavailable[name]}"

    def __getitem__(self, name: str) -> bool:
        return self._state[name]

    def on(self, name: str) -> bool:
        """Whether switch ``name`` is on (``KeyError`` for a switch this process does not own)."""
        return self._state[name]

    def snapshot(self) -> dict[str, bool]:
        return dict(self._state)

    def enabled(self) -> tuple[str, ...]:
        return tuple(name for name, on in self._state.items() if on)

    def on_change(self, callback: Callable[[str, bool], None]) -> None:
        self._callbacks.append(callback)

    def validate(self, updates: Mapping[str, object]) -> dict[str, bool]:
        """Check a whole update before applying any of it; raises :class:`SwitchError`."""
        if not isinstance(updates, Mapping):
            raise SwitchError('expected a JSON object {"switch_name": true|false}')
        clean: dict[str, bool] = {}
        for name, value in updates.items():
            if name not in SWITCH_NAMES:
                raise SwitchError(f"unknown switch {name!r}; known switches: {', '.join(SWITCH_NAMES)}")
            if name in self.unavailable:
                raise SwitchError(self._unavailable_message(name))
            if name not in self._state:
                owners = " and ".join(owner_of(name))
                raise SwitchError(f"switch {name!r} is not handled by the {self.service} service; set it on the {owners} service")
            if not isinstance(value, bool):
                raise SwitchError(f"switch {name!r}: expected true or false, got {value!r}")
            clean[name] = value
        return clean

    def update(self, updates: Mapping[str, object]) -> dict[str, bool]:
        """Apply ``{"name": bool}`` atomically (all or nothing); returns the new state."""
        clean = self.validate(updates)
        changed: list[tuple[str, bool]] = []
        with self._lock:
            for name, value in clean.items():
                if self._state[name] != value:
                    self._state[name] = value
                    changed.append((name, value))
        for name, value in changed:
            for callback in self._callbacks:
                callback(name, value)
        return self.snapshot()

    def describe(self) -> str:
        """One line for the "ready" message: ``switches=a,b`` (and what was ignored)."""
        text = f"switches={','.join(self.enabled()) or '-'}"
        if self.ignored:
            text += f" (not this service's: {','.join(self.ignored)})"
        return text


def admin_router(switches: Switches) -> APIRouter:
    """``GET``/``POST /admin/switches`` for one process's switches."""
    router = APIRouter()

    @router.get("/admin/switches")
    async def get_switches() -> dict:
        body: dict = {"service": switches.service, "switches": switches.snapshot()}
        if switches.unavailable:
            body["unavailable"] = dict(switches.unavailable)
        return body

    @router.post("/admin/switches")
    async def set_switches(updates: dict[str, object]) -> dict:
        try:
            state = switches.update(updates)
        except SwitchError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return {"service": switches.service, "switches": state}

    return router
