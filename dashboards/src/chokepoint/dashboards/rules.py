"""Prometheus recording and alert rules for chokepoint's ``/metrics``, generated from the catalog.

Every metric name comes from :mod:`chokepoint.semconv.catalog`; every bottleneck
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

from chokepoint.semconv.catalog import (
    BOTTLENECK_SCORE,
    BREAKER_CALLS,
    BREAKER_STATE,
    BREAKER_STATES,
    CONSUMER_LAG,
    DEPENDENCY_CALLS,
    DEPENDENCY_DURATION,
    DEPENDENCY_ERRORS,
    FINDING_KINDS,
    FINDINGS_BY_KIND,
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


def _ratio(part_sample: str, total_sample: str, by: str, window: str) -> str:
    return f"{_rate(part_sample, by, window)}\n/\n{_rate(total_sample, by, window)}"


def _quantile(q: float, histogram: str, by: str, window: str = "5m") -> str:
    return f"histogram_quantile({q}, {_rate(histogram + '_bucket', by + ', le', window)})"


def recording_rules() -> list[dict]:
    rules: list[dict] = [
        {"record": "chokepoint:requests:rate1m", "expr": _rate(REQUESTS.sample_name, ROUTE, "1m")},
        {"record": "chokepoint:request_errors:rate1m", "expr": _rate(REQUEST_ERRORS.sample_name, ROUTE, "1m")},
    ]
    for window in ERROR_RATIO_WINDOWS:
        rules.append(
            {
                "record": f"chokepoint:request_error_ratio:rate{window}",
                "expr": _ratio(REQUEST_ERRORS.sample_name, REQUESTS.sample_name, ROUTE, window),
            }
        )
    for window in ERROR_RATIO_WINDOWS:
        fast = _rate(f"{REQUEST_DURATION.name}_bucket", ROUTE, window, f'{{le="{LATENCY_OBJECTIVE_LE}"}}')
        total = _rate(f"{REQUEST_DURATION.name}_count", ROUTE, window)
        rules.append({"record": f"chokepoint:request_slow_ratio:rate{window}", "expr": f"1 - (\n{fast}\n/\n{total}\n)"})
    for name, q in QUANTILES:
        rules.append({"record": f"chokepoint:request_duration_seconds:{name}_5m", "expr": _quantile(q, REQUEST_DURATION.name, ROUTE)})
    rules += [
        {"record": "chokepoint:dependency_calls:rate1m", "expr": _rate(DEPENDENCY_CALLS.sample_name, DEPENDENCY, "1m")},
        {"record": "chokepoint:dependency_error_ratio:rate5m", "expr": _ratio(DEPENDENCY_ERRORS.sample_name, DEPENDENCY_CALLS.sample_name, DEPENDENCY, "5m")},
        {"record": "chokepoint:dependency_duration_seconds:p99_5m", "expr": _quantile(0.99, DEPENDENCY_DURATION.name, DEPENDENCY)},
        {"record": "chokepoint:pool_saturation", "expr": f"max by ({POOL}) ({POOL_USED.name}) / (max by ({POOL}) ({POOL_MAX.name}) > 0)"},
        {"record": "chokepoint:pool_wait_seconds:p99_5m", "expr": _quantile(0.99, POOL_WAIT.name, POOL)},
        {"record": "chokepoint:breaker_rejected:rate1m", "expr": _rate(BREAKER_CALLS.sample_name, "service, breaker", "1m", '{result="rejected"}')},
        {"record": "chokepoint:consumer_lag:deriv5m", "expr": f"max by (group, topic, partition) (deriv({CONSUMER_LAG.name}[5m]))"},
    ]
    return rules


def _camel(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, runbook: str, **annotations: str) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, **annotations, "runbook": runbook},
    }


ROUTE_LABELS = "{{ $labels.service }} {{ $labels.route }}"
BURNS = (  # (name, factor, long window, short window, for, severity)
    ("FastBurn", FAST_BURN, "1h", "5m", "2m", "critical"),
    ("SlowBurn", SLOW_BURN, "6h", "30m", "15m", "warning"),
)


def _burn_alerts(name: str, ratio_record: str, budget: float, what: str, detail: str, runbooks: tuple[str, str]) -> list[dict]:
    """Multi-window burn-rate alerts (fast, slow) on the ``<ratio_record>:rate<window>`` recordings.

    ``detail`` is formatted with the alert's ``{long}`` and ``{short}`` windows.
    """
    alerts = []
    for (suffix, factor, long, short, for_, severity), runbook in zip(BURNS, runbooks, strict=True):
        limit = f"({factor} * {budget})"
        alerts.append(
            _alert(
                f"{name}{suffix}",
                f"{ratio_record}:rate{long} > {limit}\nand\n{ratio_record}:rate{short} > {limit}",
                for_,
                severity,
                f"{ROUTE_LABELS}: {what} burning {factor:g}x too fast ({detail.format(long=long, short=short)})",
                runbook,
            )
        )
    return alerts


def alert_rules() -> list[dict]:
    open_state = BREAKER_STATES.index("open")
    alerts: list[dict] = [
        _alert(
            "ChokepointLatencyP99High",
            f"chokepoint:request_duration_seconds:p99_5m > {LATENCY_P99_OBJECTIVE_S}",
            "10m",
            "warning",
            f"{ROUTE_LABELS}: p99 latency {{{{ $value | humanizeDuration }}}} above the {int(LATENCY_P99_OBJECTIVE_S * 1000)} ms objective",
            "Open the chokepoint dashboard's route detail: compare the time breakdown of slow and average requests.",
        ),
        *_burn_alerts(
            "ChokepointLatencyBudget",
            "chokepoint:request_slow_ratio",
            LATENCY_BUDGET,
            "latency budget",
            f"{LATENCY_OBJECTIVE:.0%} of requests should take at most {LATENCY_OBJECTIVE_LE} s; {{long}} and {{short}} windows",
            (
                "Open the chokepoint dashboard's overview: the likely bottleneck banner names what slows this route down.",
                "Compare the route's fast and slow requests in the chokepoint route detail (time breakdown, kept slow traces).",
            ),
        ),
        *_burn_alerts(
            "ChokepointErrorBudget",
            "chokepoint:request_error_ratio",
            ERROR_BUDGET,
            "error budget",
            f"{{long}} and {{short}} windows, objective {AVAILABILITY_OBJECTIVE:.0%}",
            (
                "Errors now would spend a 30-day budget in about two days. Check the ranked findings (circuit_open, external_dependency_slow) and recent deploys.",
                "A steady error rate will spend the 30-day budget in about five days. Look at the route's kept error traces.",
            ),
        ),
        _alert(
            "ChokepointPoolSaturated",
            f"chokepoint:pool_saturation >= {POOL_SATURATION_THRESHOLD}\nand on ({POOL})\nmax by ({POOL}) ({POOL_PENDING.name}) > 0",
            "2m",
            "warning",
            "{{ $labels.service }}: {{ $labels.kind }} pool {{ $labels.pool }} is full and callers are waiting",
            f"DB pool: {FINDINGS_BY_KIND['db_pool_saturation'].recommendation}. Worker pool: {FINDINGS_BY_KIND['worker_pool_saturation'].recommendation}.",
        ),
        _alert(
            "ChokepointBreakerOpen",
            f"max by (service, breaker) ({BREAKER_STATE.name}) == {open_state}",
            "1m",
            "critical",
            "{{ $labels.service }}: circuit breaker {{ $labels.breaker }} is open",
            FINDINGS_BY_KIND["circuit_open"].recommendation,
        ),
        _alert(
            "ChokepointConsumerLagGrowing",
            f"chokepoint:consumer_lag:deriv5m > 0\nand\nmax by (group, topic, partition) ({CONSUMER_LAG.name}) > {CONSUMER_LAG_MIN_MESSAGES}",
            "10m",
            "warning",
            "Consumer group {{ $labels.group }} keeps falling behind on {{ $labels.topic }}/{{ $labels.partition }}",
            FINDINGS_BY_KIND["consumer_lag"].recommendation,
        ),
    ]
    for kind in FINDING_KINDS:
        alert = _alert(
            f"ChokepointBottleneck{_camel(kind.kind)}",
            f'max by (service, kind, target) ({BOTTLENECK_SCORE.name}{{kind="{kind.kind}"}}) >= {BOTTLENECK_SCORE_THRESHOLD}',
            "5m",
            "critical" if kind.kind in CRITICAL_KINDS else "warning",
            f'{{{{ $labels.service }}}}: {kind.title} on {{{{ $labels.target }}}} (score {{{{ $value | printf "%.2f" }}}})',
            kind.recommendation,
            description=kind.meaning,
        )
        alert["labels"]["kind"] = kind.kind
        alerts.append(alert)
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
