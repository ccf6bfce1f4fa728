"""Prometheus recording and alert rules for chokepoint's ``/metrics``, generated from the catalog.

Every metric name comes from :mod:`chokepoint.collector.catalog`; every bottleneck
alert's summary, description and runbook text comes from the catalog's finding kinds,
so the rules cannot drift from what the collector exports or what the analyzer says.

- recording rules (group ``chokepoint-recording``): request/dependency/error rates,
  error ratios over 5m/30m/1h/6h (for burn rates), p50/p90/p99 via
  ``histogram_quantile``, pool saturation and wait p99, breaker rejections, lag growth;
- alert rules (group ``chokepoint-alerts``): SLO-style latency (p99 above the
  objective) and multi-window error-budget burn (fast: 14.4x over 1h and 5m; slow: 6x
  over 6h and 30m) — for errors and for the share of requests slower than 500 ms —, pool saturation, breaker open, consumer lag growth, and one alert
  per bottleneck kind on ``chokepoint_bottleneck_score{kind=...}``.

Usage::

    chokepoint rules > chokepoint-rules.yml          # print them
    python -m chokepoint.dashboards.rules --write    # regenerate dashboards/prometheus/chokepoint-rules.yml

The checked-in file is compared with :func:`rules_yaml` in the tests and checked with
``promtool check rules`` / ``promtool test rules`` (``dashboards/prometheus/tests``).
Objectives (module constants): p99 latency 500 ms; 99 % of requests within 500 ms
(``le="0.5"``, a bucket bound of the collector's latency histograms); availability 99 %.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from chokepoint.collector.catalog import (
    BOTTLENECK_SCORE,
    BREAKER_CALLS,
    BREAKER_STATE,
    BREAKER_STATES,
    CONSUMER_LAG,
    DEPENDENCY_CALLS,
    DEPENDENCY_DURATION,
    DEPENDENCY_ERRORS,
    FINDING_KINDS,
    POOL_MAX,
    POOL_PENDING,
    POOL_USED,
    POOL_WAIT,
    REQUEST_DURATION,
    REQUEST_ERRORS,
    REQUESTS,
)

RULES_FILE = Path(__file__).resolve().parents[3] / "prometheus" / "chokepoint-rules.yml"

LATENCY_P99_OBJECTIVE_S = 0.5
LATENCY_OBJECTIVE_LE = "0.5"  # "fast" = at most 0.5 s; must be a bucket bound of the collector's histograms
LATENCY_OBJECTIVE = 0.99  # 99 % of requests fast
LATENCY_BUDGET = round(1 - LATENCY_OBJECTIVE, 6)
AVAILABILITY_OBJECTIVE = 0.99
ERROR_BUDGET = round(1 - AVAILABILITY_OBJECTIVE, 6)
FAST_BURN, SLOW_BURN = 14.4, 6.0
POOL_SATURATION_THRESHOLD = 1.0
CONSUMER_LAG_MIN_MESSAGES = 1000
BOTTLENECK_SCORE_THRESHOLD = 0.5
CRITICAL_KINDS = frozenset(
    {"worker_pool_saturation", "cpu_saturation", "event_loop_blocked", "db_pool_saturation", "circuit_open", "connection_held_during_external_call"}
)

ROUTE = "service, route"
DEPENDENCY = "service, kind, target"
POOL = "service, kind, pool"
ERROR_RATIO_WINDOWS = ("5m", "30m", "1h", "6h")
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def _rate(metric_sample: str, by: str, window: str, selector: str = "") -> str:
    return f"sum by ({by}) (rate({metric_sample}{selector}[{window}]))"


def recording_rules() -> list[dict]:
    rules: list[dict] = [
        {"record": "chokepoint:requests:rate1m", "expr": _rate(REQUESTS.sample_name, ROUTE, "1m")},
        {"record": "chokepoint:request_errors:rate1m", "expr": _rate(REQUEST_ERRORS.sample_name, ROUTE, "1m")},
    ]
    for window in ERROR_RATIO_WINDOWS:
        rules.append(
            {
                "record": f"chokepoint:request_error_ratio:rate{window}",
                "expr": f"{_rate(REQUEST_ERRORS.sample_name, ROUTE, window)}\n/\n{_rate(REQUESTS.sample_name, ROUTE, window)}",
            }
        )
    for window in ERROR_RATIO_WINDOWS:
        fast = f'sum by ({ROUTE}) (rate({REQUEST_DURATION.name}_bucket{{le="{LATENCY_OBJECTIVE_LE}"}}[{window}]))'
        total = f"sum by ({ROUTE}) (rate({REQUEST_DURATION.name}_count[{window}]))"
        rules.append({"record": f"chokepoint:request_slow_ratio:rate{window}", "expr": f"1 - (\n{fast}\n/\n{total}\n)"})
    for name, q in QUANTILES:
        rules.append(
            {
                "record": f"chokepoint:request_duration_seconds:{name}_5m",
                "expr": f"histogram_quantile({q}, sum by ({ROUTE}, le) (rate({REQUEST_DURATION.name}_bucket[5m])))",
            }
        )
    rules += [
        {"record": "chokepoint:dependency_calls:rate1m", "expr": _rate(DEPENDENCY_CALLS.sample_name, DEPENDENCY, "1m")},
        {
            "record": "chokepoint:dependency_error_ratio:rate5m",
            "expr": f"{_rate(DEPENDENCY_ERRORS.sample_name, DEPENDENCY, '5m')}\n/\n{_rate(DEPENDENCY_CALLS.sample_name, DEPENDENCY, '5m')}",
        },
        {
            "record": "chokepoint:dependency_duration_seconds:p99_5m",
            "expr": f"histogram_quantile(0.99, sum by ({DEPENDENCY}, le) (rate({DEPENDENCY_DURATION.name}_bucket[5m])))",
        },
        {"record": "chokepoint:pool_saturation", "expr": f"max by ({POOL}) ({POOL_USED.name}) / (max by ({POOL}) ({POOL_MAX.name}) > 0)"},
        {"record": "chokepoint:pool_wait_seconds:p99_5m", "expr": f"histogram_quantile(0.99, sum by ({POOL}, le) (rate({POOL_WAIT.name}_bucket[5m])))"},
        {"record": "chokepoint:breaker_rejected:rate1m", "expr": _rate(BREAKER_CALLS.sample_name, "service, breaker", "1m", '{result="rejected"}')},
        {"record": "chokepoint:consumer_lag:deriv5m", "expr": f"deriv({CONSUMER_LAG.name}[5m])"},
    ]
    return rules


def _camel(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


def alert_rules() -> list[dict]:
    open_state = BREAKER_STATES.index("open")
    alerts: list[dict] = [
        {
            "alert": "ChokepointLatencyP99High",
            "expr": f"chokepoint:request_duration_seconds:p99_5m > {LATENCY_P99_OBJECTIVE_S}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.service }} {{ $labels.route }}: p99 latency {{ $value | humanizeDuration }} above the "
                + f"{int(LATENCY_P99_OBJECTIVE_S * 1000)} ms objective",
                "runbook": "Open the chokepoint dashboard's route detail: compare the time breakdown of slow and average requests.",
            },
        },
        {
            "alert": "ChokepointLatencyBudgetFastBurn",
            "expr": f"chokepoint:request_slow_ratio:rate1h > ({FAST_BURN} * {LATENCY_BUDGET})\nand\nchokepoint:request_slow_ratio:rate5m > ({FAST_BURN} * {LATENCY_BUDGET})",
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "{{ $labels.service }} {{ $labels.route }}: latency budget burning "
                + f"{FAST_BURN:g}x too fast ({LATENCY_OBJECTIVE:.0%} of requests should take at most {LATENCY_OBJECTIVE_LE} s; 1h and 5m windows)",
                "runbook": "Open the chokepoint dashboard's overview: the likely bottleneck banner names what slows this route down.",
            },
        },
        {
            "alert": "ChokepointLatencyBudgetSlowBurn",
            "expr": f"chokepoint:request_slow_ratio:rate6h > ({SLOW_BURN} * {LATENCY_BUDGET})\nand\nchokepoint:request_slow_ratio:rate30m > ({SLOW_BURN} * {LATENCY_BUDGET})",
            "for": "15m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.service }} {{ $labels.route }}: latency budget burning "
                + f"{SLOW_BURN:g}x too fast ({LATENCY_OBJECTIVE:.0%} of requests should take at most {LATENCY_OBJECTIVE_LE} s; 6h and 30m windows)",
                "runbook": "Compare the route's fast and slow requests in the chokepoint route detail (time breakdown, kept slow traces).",
            },
        },
        {
            "alert": "ChokepointErrorBudgetFastBurn",
            "expr": f"chokepoint:request_error_ratio:rate1h > ({FAST_BURN} * {ERROR_BUDGET})\nand\nchokepoint:request_error_ratio:rate5m > ({FAST_BURN} * {ERROR_BUDGET})",
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "{{ $labels.service }} {{ $labels.route }}: error budget burning "
                + f"{FAST_BURN:g}x too fast (1h and 5m windows, objective {AVAILABILITY_OBJECTIVE:.0%})",
                "runbook": "Errors now would spend a 30-day budget in about two days. Check the ranked findings (circuit_open, external_dependency_slow) and recent deploys.",
            },
        },
        {
            "alert": "ChokepointErrorBudgetSlowBurn",
            "expr": f"chokepoint:request_error_ratio:rate6h > ({SLOW_BURN} * {ERROR_BUDGET})\nand\nchokepoint:request_error_ratio:rate30m > ({SLOW_BURN} * {ERROR_BUDGET})",
            "for": "15m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.service }} {{ $labels.route }}: error budget burning "
                + f"{SLOW_BURN:g}x too fast (6h and 30m windows, objective {AVAILABILITY_OBJECTIVE:.0%})",
                "runbook": "A steady error rate will spend the 30-day budget in about five days. Look at the route's kept error traces.",
            },
        },
        {
            "alert": "ChokepointPoolSaturated",
            "expr": f"chokepoint:pool_saturation >= {POOL_SATURATION_THRESHOLD}\nand on ({POOL})\nmax by ({POOL}) ({POOL_PENDING.name}) > 0",
            "for": "2m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.service }}: {{ $labels.kind }} pool {{ $labels.pool }} is full and callers are waiting",
                "runbook": "DB pool: "
                + next(k.recommendation for k in FINDING_KINDS if k.kind == "db_pool_saturation")
                + ". Worker pool: "
                + next(k.recommendation for k in FINDING_KINDS if k.kind == "worker_pool_saturation")
                + ".",
            },
        },
        {
            "alert": "ChokepointBreakerOpen",
            "expr": f"max by (service, breaker) ({BREAKER_STATE.name}) == {open_state}",
            "for": "1m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "{{ $labels.service }}: circuit breaker {{ $labels.breaker }} is open",
                "runbook": next(k.recommendation for k in FINDING_KINDS if k.kind == "circuit_open"),
            },
        },
        {
            "alert": "ChokepointConsumerLagGrowing",
            "expr": f"chokepoint:consumer_lag:deriv5m > 0\nand\n{CONSUMER_LAG.name} > {CONSUMER_LAG_MIN_MESSAGES}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Consumer group {{ $labels.group }} keeps falling behind on {{ $labels.topic }}/{{ $labels.partition }}",
                "runbook": next(k.recommendation for k in FINDING_KINDS if k.kind == "consumer_lag"),
            },
        },
    ]
    for kind in FINDING_KINDS:
        alerts.append(
            {
                "alert": f"ChokepointBottleneck{_camel(kind.kind)}",
                "expr": f'max by (service, kind, target) ({BOTTLENECK_SCORE.name}{{kind="{kind.kind}"}}) >= {BOTTLENECK_SCORE_THRESHOLD}',
                "for": "5m",
                "labels": {"severity": "critical" if kind.kind in CRITICAL_KINDS else "warning", "kind": kind.kind},
                "annotations": {
                    "summary": f'{{{{ $labels.service }}}}: {kind.title} on {{{{ $labels.target }}}} (score {{{{ $value | printf "%.2f" }}}})',
                    "description": kind.meaning,
                    "runbook": kind.recommendation,
                },
            }
        )
    return alerts


def rules_document() -> dict:
    return {
        "groups": [
            {"name": "chokepoint-recording", "rules": recording_rules()},
            {"name": "chokepoint-alerts", "rules": alert_rules()},
        ]
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def rules_yaml() -> str:
    header = "# Generated by chokepoint.dashboards.rules from chokepoint.collector.catalog — do not edit by hand.\n"
    return header + yaml.dump(rules_document(), Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)


def all_expressions() -> list[str]:
    """Every PromQL expression in the rules (the integration test runs each one)."""
    return [rule["expr"] for group in rules_document()["groups"] for rule in group["rules"]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--write"]:
        RULES_FILE.parent.mkdir(parents=True, exist_ok=True)
        RULES_FILE.write_text(rules_yaml())
        print(RULES_FILE)
    else:
        sys.stdout.write(rules_yaml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
