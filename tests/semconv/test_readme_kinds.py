"""The README's finding-kinds table lists exactly the catalog's kinds, in the catalog's order."""

from __future__ import annotations

import re
from pathlib import Path

from chokepoint.semconv.catalog import FINDING_KINDS, Kind

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<kind>[a-z0-9_]+)` \| (?P<meaning>[^|]+) \| (?P<fix>[^|]+) \|$")


def readme_kinds_table() -> list[tuple[str, str, str]]:
    """The rows of the table under the ``| kind | meaning | typical fix |`` header."""
    lines = README.read_text().splitlines()
    start = lines.index("| kind | meaning | typical fix |")
    assert lines[start + 1].startswith("|---"), "the kinds table lost its header separator"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        assert match, f"README kinds-table row not of the form | `kind` | meaning | fix |: {line!r}"
        rows.append((match["kind"], match["meaning"].strip(), match["fix"].strip()))
    return rows


def test_readme_lists_every_catalog_kind_once_in_catalog_order():
    listed = [kind for kind, _meaning, _fix in readme_kinds_table()]
    assert listed == [k.kind for k in FINDING_KINDS]


def test_every_kind_constant_has_a_catalog_entry():
    constants = {value for name, value in vars(Kind).items() if name.isupper()}
    assert constants == {k.kind for k in FINDING_KINDS}
    assert len(FINDING_KINDS) == len(constants)


def test_readme_rows_say_something():
    for kind, meaning, fix in readme_kinds_table():
        assert len(meaning) > 10 and len(fix) > 5, kind
