"""A forked worker exports its metrics on its own, whatever the parent was doing at the fork.

Usage::

    from chokepoint.instrument.forking import reinit_metric_export_after_fork
    reinit_metric_export_after_fork(metric_reader)   # once, when the agent is built

Servers that pre-fork (gunicorn, uWSGI, multiprocessing) set the agent up in the parent and
``fork()`` the workers.  The SDK's ``PeriodicExportingMetricReader`` starts a fresh export
thread in each child, but it keeps the parent's ``export lock`` and the exporter's HTTP
session.  When the fork lands while the parent is exporting (it does so every
``OTEL_METRIC_EXPORT_INTERVAL``; on a busy host an export takes tens of milliseconds), the
child's copy of that lock is held by a thread that does not exist in the child: the
worker's export thread waits on it forever and the worker never exports a metric.  The
child also inherits the parent's keep-alive connection to the sidecar, so two processes
would write requests on one socket.

After a fork, in the child only, this gives the reader a new export lock and drops the
exporter's pooled connections (the parent keeps its own; closing the child's copy of a
socket sends nothing), through :func:`chokepoint.instrument.compat.reset_reader_export_in_child`
(the SDK keeps both privately).  A reader without those attributes is left alone.  Never raises.
"""

from __future__ import annotations

import logging
import os
import weakref

from chokepoint.instrument.compat import reset_reader_export_in_child

_log = logging.getLogger("chokepoint.instrument")


def reinit_metric_export_after_fork(reader) -> None:
    """Register the child-side reset for ``reader`` (kept by weak reference)."""
    if not hasattr(os, "register_at_fork"):
        return
    weak_reader = weakref.ref(reader)

    def after_in_child() -> None:
        me = weak_reader()
        if me is not None:
            reset_export_state(me)

    os.register_at_fork(after_in_child=after_in_child)


def reset_export_state(reader) -> None:
    """In a forked child: a free export lock and no connection shared with the parent."""
    try:
        reset_reader_export_in_child(reader)
    except Exception:
        _log.debug("chokepoint: resetting the metric export after fork failed", exc_info=True)
