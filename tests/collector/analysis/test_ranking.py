"""ranking: severity before score, symptoms demoted, and hysteresis across runs (issue 13 item 7)."""

from __future__ import annotations

from chokepoint.collector.analysis.candidate import Candidate
from chokepoint.collector.analysis.ranking import INCUMBENT_MARGIN, Hysteresis, order, rank
from chokepoint.collector.catalog import Kind


def cand(kind: str, score: float, service: str = "shop", target: str = "t") -> Candidate:
    """A candidate whose score is ``score`` (all of it from ``strength``, the rest as specificity)."""
    return Candidate(kind, service, target, explained=0.0, strength=1.0, summary=kind, evidence={"n": 1}, specificity=score - 0.45)


def keys(cs):
    return [(c.kind, c.score) for c in cs]


def test_order_is_severity_then_score():
    assert keys(order([cand(Kind.CACHEABLE_READS, 0.39), cand(Kind.DB_POOL_SATURATION, 0.41), cand(Kind.SLOW_QUERY, 0.75)])) == [
        (Kind.SLOW_QUERY, 0.75),
        (Kind.DB_POOL_SATURATION, 0.41),
        (Kind.CACHEABLE_READS, 0.39),
    ]


def test_specificity_tells_apart_two_causes_that_both_reach_one():
    # Django gthread, a route whose 1 s backend call starves the other route: both rules reach 1.0
    dependency = Candidate(Kind.EXTERNAL_DEPENDENCY_SLOW, "shop", "127.0.0.1", explained=0.99, strength=1.0, summary="", evidence={})
    hot = Candidate(Kind.HOT_ENDPOINT, "shop", "/report", explained=1.0, strength=1.0, summary="", evidence={}, specificity=0.15)
    assert (dependency.score, hot.score) == (0.994, 1.0)  # the incumbent margin alone kept the dependency on top
    assert [c.kind for c in order([dependency, hot], incumbent=dependency.key)] == [Kind.HOT_ENDPOINT, Kind.EXTERNAL_DEPENDENCY_SLOW]


def test_the_incumbent_margin_never_lifts_an_info_above_a_warning():
    info, warning = cand(Kind.CACHEABLE_READS, 0.38), cand(Kind.DB_POOL_SATURATION, 0.40)
    assert keys(order([warning, info], incumbent=info.key))[0] == (Kind.DB_POOL_SATURATION, 0.40)


def test_a_cpu_bound_process_demotes_its_symptoms():
    cpu, loop = cand(Kind.CPU_SATURATION, 0.6), cand(Kind.EVENT_LOOP_BLOCKED, 0.7)
    ranked = rank([loop, cpu])
    assert keys(ranked) == [(Kind.CPU_SATURATION, 0.6), (Kind.EVENT_LOOP_BLOCKED, 0.35)]
    assert ranked[1].evidence == {"n": 1, "cpu_bound": True}


def test_a_steady_bottleneck_keeps_the_top_place_while_its_rule_blinks():
    h = Hysteresis(dwell_s=15.0)
    pool, reads = cand(Kind.DB_POOL_SATURATION, 0.8), cand(Kind.CACHEABLE_READS, 0.3)
    assert keys(h.apply([pool, reads], now=100.0)) == [(Kind.DB_POOL_SATURATION, 0.8), (Kind.CACHEABLE_READS, 0.3)]
    held = h.apply([reads], now=105.0)  # the pool rule missed one run
    assert keys(held) == [(Kind.DB_POOL_SATURATION, 0.8), (Kind.CACHEABLE_READS, 0.3)]
    assert held[0].evidence == {"n": 1, "held_s": 5.0}
    assert keys(h.apply([pool, reads], now=110.0))[0] == (Kind.DB_POOL_SATURATION, 0.8)
    assert h.apply([pool, reads], now=110.0)[0].evidence == {"n": 1}  # fired again: not held
    # after the fix: held for the dwell, then gone
    assert keys(h.apply([reads], now=124.0))[0] == (Kind.DB_POOL_SATURATION, 0.8)
    assert keys(h.apply([reads], now=126.0)) == [(Kind.CACHEABLE_READS, 0.3)]


def test_an_info_finding_is_not_held():
    h = Hysteresis(dwell_s=15.0)
    h.apply([cand(Kind.CACHEABLE_READS, 0.3)], now=100.0)
    assert h.apply([], now=101.0) == []


def test_the_incumbent_keeps_the_top_against_a_near_tie_only():
    h = Hysteresis(dwell_s=15.0)
    a, b = "slow_query", "n_plus_one"
    assert h.apply([cand(a, 0.62), cand(b, 0.60)], now=1.0)[0].kind == a
    assert h.apply([cand(a, 0.60), cand(b, 0.60 + INCUMBENT_MARGIN - 0.01)], now=2.0)[0].kind == a
    assert h.apply([cand(a, 0.60), cand(b, 0.70)], now=3.0)[0].kind == b
    assert h.apply([cand(a, 0.66), cand(b, 0.70)], now=4.0)[0].kind == b  # now b is the incumbent
