"""The base of chokepoint's own integrations: an ``opentelemetry-instrumentation`` ``BaseInstrumentor``.

A subclass names its plan row (``library``), the distributions it instruments
(``_instruments``, checked by the loader as upstream's are) and implements
``install(tracer_provider, instruments, config)``, returning the undo callable (or
``None`` when nothing was patched).  ``instrument(...)`` accepts ``tracer_provider``,
``instruments`` (the agent's :class:`~chokepoint.instrument.instruments.AgentInstruments`)
and ``config``; without a config it reads the environment's and installs only when the
plan gives the library to chokepoint.  ``uninstrument()`` runs the undo.  Neither raises
into the app: a failing install is logged and leaves the library as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.plan import make_plan

_log = logging.getLogger("chokepoint.instrument")


class Integration(BaseInstrumentor):
    library: str = ""
    libraries: tuple[str, ...] = ()  # plan rows any of which brings this integration ((library,) if empty)
    _instruments: tuple[str, ...] = ()

    @classmethod
    def wanted(cls, plan) -> bool:
        """Whether ``plan`` gives any of this integration's libraries to chokepoint."""
        return any(plan.own(library) for library in cls.libraries or (cls.library,))

    def instrumentation_dependencies(self) -> Collection[str]:
        return self._instruments

    def install(self, tracer_provider, instruments, config: AgentConfig) -> Callable[[], None] | None:
        raise NotImplementedError

    def _instrument(self, **kwargs):
        config = kwargs.get("config")
        if config is None:
            config = AgentConfig.from_env()
            if not self.wanted(make_plan(config)):
                return
        try:
            self._undo = self.install(kwargs.get("tracer_provider"), kwargs.get("instruments"), config)
        except Exception:
            _log.warning("chokepoint: the %s integration failed to install; continuing without it", self.library, exc_info=True)
            self._undo = None

    def _uninstrument(self, **kwargs):
        undo, self._undo = getattr(self, "_undo", None), None
        if undo is not None:
            undo()

    @property
    def installed(self) -> bool:
        """Whether this integration's patches are in place."""
        return getattr(self, "_undo", None) is not None
