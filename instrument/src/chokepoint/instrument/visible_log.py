"""chokepoint's warnings reach stderr even when only OpenTelemetry's log bridge listens.

Python prints a warning nobody handles through ``logging.lastResort`` (stderr), but only
when no handler at all is found on the logger's chain.  ``opentelemetry-instrumentation-logging``
(and an SDK ``LoggingHandler``) puts its bridge on the root logger: from then on the agent's
warnings — a blind spot, a patch that failed — would go to the OTLP log pipeline only, and no
one would see them.

Usage (the agent does this at set-up and undoes it at shutdown)::

    undo = install_visible_warnings()      # on the ``chokepoint.instrument`` logger
    undo()

The handler prints a record (WARNING and above, through ``logging.lastResort``) only when
every other handler on its way is OpenTelemetry's (a handler class from an ``opentelemetry``
module) or there is none; an app that logs to stderr, a file or anything else of its own
sees each warning once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

AGENT_LOGGER = "chokepoint.instrument"


class LastResortWhenBridged(logging.Handler):
    """Forwards a record to ``logging.lastResort`` when no handler but OpenTelemetry's gets it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if logging.lastResort is not None and only_bridge_handlers(logging.getLogger(record.name), exclude=self):
            logging.lastResort.handle(record)


def only_bridge_handlers(logger: logging.Logger, exclude: logging.Handler | None = None) -> bool:
    """True when every handler on ``logger``'s chain (``exclude`` left out) is OpenTelemetry's, or there is none."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler is not exclude and not type(handler).__module__.startswith("opentelemetry"):
                return False
        if not current.propagate:
            break
        current = current.parent
    return True


def install_visible_warnings(logger_name: str = AGENT_LOGGER) -> Callable[[], None]:
    """Attach the handler to ``logger_name`` (once); returns its undo."""
    logger = logging.getLogger(logger_name)
    existing = [h for h in logger.handlers if isinstance(h, LastResortWhenBridged)]
    if existing:
        return lambda: None
    handler = LastResortWhenBridged()
    logger.addHandler(handler)
    return lambda: logger.removeHandler(handler)
