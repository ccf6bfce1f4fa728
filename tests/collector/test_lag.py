"""Burrow-style consumer-lag evaluator and time-lag interpolation: table-driven."""

from __future__ import annotations

import pytest

from chokepoint.collector.lag import ERR, OK, STALL, STOP, WARN, LagRules, LagSample, evaluate, time_lag_s

RULES = LagRules(window_s=600, min_samples=3, stall_after_s=30, stop_after_s=120)


def series(*rows, t0=1000.0, step=10.0):
    """rows of (committed, log_end[, commit_ts]) every ``step`` seconds from ``t0``."""
    return [LagSample(t0 + i * step, r[0], r[1], r[2] if len(r) > 2 else None) for i, r in enumerate(rows)]


CASES = [
    # name, samples, now, expected
    ("no samples", [], 2000.0, OK),
    ("caught up", series((100, 100), (150, 150), (200, 200)), 1030.0, OK),
    ("lag but shrinking", series((100, 200), (180, 240), (260, 280)), 1030.0, OK),
    ("lag dropped to zero inside the window", series((100, 200), (200, 200), (210, 260), (220, 300)), 1040.0, OK),
    ("moving but lag growing", series((100, 150), (120, 200), (140, 260), (160, 330)), 1040.0, WARN),
    ("not moving while lag > 0, consumer alive", series((100, 150), (100, 180), (100, 210), (100, 240)), 1040.0, STALL),
    ("no commit for longer than stop_after", series((100, 150), (100, 180), (100, 210)), 1200.0, STOP),
    ("commit timestamp known and old", series((100, 150, 900.0), (120, 190, 900.0), (140, 230, 900.0)), 1030.0, STOP),
    ("committed offset rewound", series((100, 150), (90, 160), (95, 170)), 1030.0, ERR),
    ("committed beyond log end", series((100, 150), (170, 160)), 1020.0, ERR),
    ("negative offset", series((-5, 150), (10, 160)), 1020.0, ERR),
    ("log end went down (topic recreated)", series((100, 150), (100, 20)), 1020.0, ERR),
    ("too few samples to judge a trend", series((100, 150), (120, 200)), 1020.0, OK),
    ("samples outside the window are ignored", series((100, 150), (90, 160), t0=0.0) + series((200, 200), t0=1000.0), 1010.0, OK),
]


@pytest.mark.parametrize(("name", "samples", "now", "expected"), CASES, ids=[c[0] for c in CASES])
def test_status(name, samples, now, expected):
    assert evaluate(samples, now, RULES) == expected


def test_stall_turns_into_stop_after_the_threshold():
    samples = series((100, 150), (100, 180), (100, 210), (100, 240))
    assert evaluate(samples, 1040.0, RULES) == STALL
    assert evaluate(samples, 1000.0 + 121.0, RULES) == STOP


HISTORY = [(100.0, 1000), (110.0, 1100), (120.0, 1300), (130.0, 1300), (140.0, 1600)]


@pytest.mark.parametrize(
    ("committed", "now", "expected"),
    [
        (1600, 145.0, 0.0),  # at the log end
        (1700, 145.0, 0.0),  # past it (should not happen): 0
        (1050, 145.0, 145.0 - 105.0),  # halfway between 1000@100 and 1100@110
        (1200, 145.0, 145.0 - 115.0),  # halfway between 1100@110 and 1300@120
        (1300, 145.0, 145.0 - 130.0),  # log end sat at 1300 from 120 to 130, then moved: passed at 130
        (1000, 145.0, 145.0 - 100.0),  # exactly the oldest point
        (900, 145.0, 145.0 - (100.0 - 100 / 15)),  # older than history: extrapolated at 600 msgs / 40 s = 15/s
    ],
)
def test_time_lag_interpolates_committed_offset_in_log_end_history(committed, now, expected):
    assert time_lag_s(committed, HISTORY, now) == pytest.approx(expected)


def test_time_lag_without_history_is_unknown():
    assert time_lag_s(5, [], 10.0) is None


def test_time_lag_with_a_single_history_point_below_the_offset_is_unknown():
    assert time_lag_s(5, [(10.0, 8)], 10.0) is None
    assert time_lag_s(5, [(10.0, 8)], 25.0) == 15.0  # but at least the time since that point
