"""The ``chokepoint`` command: subcommands from every installed part are registered."""

from __future__ import annotations

import pytest

from chokepoint.collector.cli import build_parser, main


def test_subcommands_from_all_parts_are_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"serve", "report", "dashboard"} <= set(sub.choices)


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: chokepoint" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
