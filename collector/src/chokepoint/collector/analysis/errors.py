"""Rules that raise: logged once per kind and counted, never silently skipped.

``RuleErrors`` counts per finding kind; the service exports the counts as
``chokepoint_analyzer_rule_errors_total{kind}`` (``catalog.ANALYZER_RULE_ERRORS``).  The
first error of a kind is logged with its traceback; later ones are only counted.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("chokepoint.collector.analysis")


class RuleErrors:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def record(self, kind: str) -> None:
        """Call from an ``except`` block: counts, and logs the traceback the first time for ``kind``."""
        with self._lock:
            first = kind not in self._counts
            self._counts[kind] = self._counts.get(kind, 0) + 1
        if first:
            log.exception("analyzer rule %s raised; its findings are missing (counted in chokepoint_analyzer_rule_errors_total)", kind)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
