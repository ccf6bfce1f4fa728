"""Every finding kind's rule has a fixture table in this package."""

from __future__ import annotations

from pathlib import Path

from chokepoint.collector.analysis.rules import RULES
from chokepoint.collector.catalog import FINDING_KINDS


def test_every_kind_has_a_rule_and_a_table():
    assert set(RULES) == {k.kind for k in FINDING_KINDS}
    tables = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = [kind for kind in RULES if f"rules.{kind}" not in tables and f" {kind}," not in tables and f" {kind}\n" not in tables]
    assert missing == []
