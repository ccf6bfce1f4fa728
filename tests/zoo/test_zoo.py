"""The zoo: does chokepoint name the bottleneck of small apps it has never seen?

For each app of ``tests/zoo/apps_table.py`` (run by ``tests/zoo/zoo.py``, a few at a time):

1. its bottleneck is real and dominant by a measurement outside chokepoint (the client's latency
   against the handler's own time, PostgreSQL's and MariaDB's own views, Kafka's offsets, the
   accept backlog, ``/proc``, the remote API's own counts) — a healthy app is healthy by the same;
2. chokepoint's top finding for the app's service names the expected kind and target (a healthy
   app: no finding above ``info``), within the detection limit;
3. the top finding's evidence numbers are within 25 % of the ground truth.

The CI subset runs in the default run; ``make accuracy`` runs the whole zoo and writes
``docs/ACCURACY.md``::

    .venv/bin/python -m pytest tests/zoo -q              # CI subset
    .venv/bin/python -m pytest tests/zoo -q -m zoo       # the whole zoo
"""

from __future__ import annotations

import pytest

from tests.zoo.apps_table import APPS


@pytest.mark.parametrize("app", [a.name for a in APPS])
def test_zoo_app(zoo, app):
    spec = next(a for a in APPS if a.name == app)
    r = zoo.result(app)
    context = f"{app} ({r.host}; attempts {r.attempts}; tops seen {r.seen})"
    assert not r.error, f"{context}: {r.error}"
    assert r.real is None, f"{context}: the ground truth does not show the app's {'health' if spec.expected is None else 'bottleneck'}: {r.real}; {r.truth}"
    if spec.expected is None:
        assert r.above_info == [], f"{context}: findings above info on a healthy app: {r.above_info}"
        return
    assert r.hit, f"{context}: expected {spec.expected} ({spec.target}) to lead; top was {r.top}"
    assert r.evidence_ok, f"{context}: evidence vs ground truth (chokepoint, truth, within 25 %): {r.evidence}"
