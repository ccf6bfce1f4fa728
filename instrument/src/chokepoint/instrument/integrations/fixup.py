"""The base of chokepoint's fix-up integrations: what the agent adds over an upstream instrumentor.

A fix-up completes one upstream ``opentelemetry-instrumentation-*`` instrumentor (its plan
row's ``fixup``, :mod:`chokepoint.instrument.plan`): chokepoint's distro runs it right after
that instrumentor, when :meth:`~chokepoint.instrument.plan.Plan.fixes` says so, and keeps
its ``uninstrument`` for the agent, whose ``shutdown()`` reverts it.  An upstream
instrumentor that an own integration turns on itself (SQLAlchemy past its declared range)
gets its fix-ups from the agent (``Agent.late_fixups``), after the own integrations::

    integration = KafkaFixups()
    integration.instrument(plan=plan, skip_dep_check=True)   # after KafkaInstrumentor().instrument()
    integration.uninstrument()                                # every patch it made, undone

A subclass names its plan row (``library``), the upstream instrumentor it completes
(``upstream``, ``"module:Class"``) and implements ``fix(run_upstream)``, yielding the
undo callable of each patch it made (``None``: nothing patched).  A fix-up whose
row has ``fixup_runs_upstream`` (Django) is handed ``run_upstream``, the call that installs
the upstream instrumentor, and decides when to make it; the others get ``None``.

Loaded through its entry point by another distro (no ``plan``), a fix-up reads the plan
from the environment and installs only when its upstream instrumentor is already active
(a fix-up that wraps what upstream wraps must come second), and a fix-up that runs the
upstream instrumentor itself installs nothing.  Never raises into the app: a failing
fix-up is logged and leaves the upstream instrumentation as it is.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable

from chokepoint.instrument.config import AgentConfig
from chokepoint.instrument.integrations.base import Integration
from chokepoint.instrument.plan import BY_NAME, make_plan

_log = logging.getLogger("chokepoint.instrument")


class Fixup(Integration):
    upstream: str = ""  # "module:Class" of the upstream instrumentor this completes

    @classmethod
    def wanted(cls, plan) -> bool:
        return plan.fixes(cls.library)

    @classmethod
    def runs_upstream(cls) -> bool:
        """Whether this fix-up installs the upstream instrumentor itself (``run_upstream``)."""
        return BY_NAME[cls.library].fixup_runs_upstream

    def fix(self, run_upstream: Callable[[], None] | None) -> Iterable[Callable[[], None] | None]:
        raise NotImplementedError

    def upstream_active(self) -> bool:
        module_name, _, class_name = self.upstream.partition(":")
        try:
            instrumentor = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            return False
        return bool(instrumentor().is_instrumented_by_opentelemetry)

    def _instrument(self, **kwargs):
        self._undo = None
        plan, run_upstream = kwargs.get("plan"), kwargs.get("run_upstream")
        if plan is None:  # through the entry point, under another distro
            if not self.wanted(make_plan(kwargs.get("config") or AgentConfig.from_env())):
                return
            if self.runs_upstream() or not self.upstream_active():
                _log.debug("chokepoint: %s fix-ups run after chokepoint's distro loads the instrumentor; skipped", self.library)
                return
        undos: list[Callable[[], None]] = []
        try:
            for undo in self.fix(run_upstream):  # a generator: the patches made before a failure are still undone
                if undo is not None:
                    undos.append(undo)
        except Exception:
            _log.warning("chokepoint: completing the %s instrumentation failed", self.library, exc_info=True)
        if undos:
            self._undo = chained(undos)


def chained(undos: list[Callable[[], None]]) -> Callable[[], None]:
    """One undo that runs ``undos`` newest first, each even if an earlier one fails."""

    def undo() -> None:
        for one in reversed(undos):
            try:
                one()
            except Exception:
                _log.debug("chokepoint: undoing a fix-up failed", exc_info=True)

    return undo
