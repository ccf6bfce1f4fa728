"""chokepoint.dashboards.rules: checked-in YAML is the generated one; promtool checks and unit-tests it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from chokepoint.collector.catalog import FINDING_KINDS, METRICS
from chokepoint.dashboards import rules
from devservices import ServiceUnavailable, prometheus_binaries

TESTS_YML = rules.RULES_FILE.parent / "tests" / "chokepoint-rules-test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    try:
        return prometheus_binaries()[1]
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def test_checked_in_rules_are_the_generated_ones():
    assert rules.RULES_FILE.read_text() == rules.rules_yaml(), "regenerate: python -m chokepoint.dashboards.rules --write"


def test_every_expression_uses_catalog_names_only():
    known = {m.sample_name for m in METRICS} | {f"{m.name}_{part}" for m in METRICS if m.type == "histogram" for part in ("bucket", "count", "sum")}
    doc = rules.rules_document()
    recorded = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
    for expr in rules.all_expressions():
        for token in expr.replace("(", " ").replace(")", " ").replace("{", " ").replace("[", " ").split():
            if token.startswith("chokepoint_"):
                assert token in known, f"{token} is not in chokepoint.collector.catalog"
            elif token.startswith("chokepoint:"):
                assert token in recorded, f"{token} is not a recording rule"


def test_one_alert_per_bottleneck_kind_with_catalog_runbook():
    alerts = {r["alert"]: r for r in rules.alert_rules()}
    for kind in FINDING_KINDS:
        rule = next(r for r in alerts.values() if r["labels"].get("kind") == kind.kind)
        assert f'kind="{kind.kind}"' in rule["expr"]
        assert rule["annotations"]["runbook"] == kind.recommendation
        assert rule["for"] == "5m" and rule["labels"]["severity"] in ("warning", "critical")


def test_promtool_check_rules(promtool):
    out = subprocess.run([promtool, "check", "rules", str(rules.RULES_FILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules.all_expressions())} rules found" in out.stdout


def test_promtool_unit_tests_fire_and_stay_quiet(promtool):
    out = subprocess.run([promtool, "test", "rules", str(TESTS_YML)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_bottleneck_alert_fires_above_threshold_only(promtool, tmp_path: Path):
    """A generated promtool test: each kind scores 0.9 on one target (fires) and 0.3 on another (quiet)."""
    series, cases = [], []
    for kind in FINDING_KINDS:
        alert = next(r for r in rules.alert_rules() if r["labels"].get("kind") == kind.kind)
        for target, score in (("hot", 0.9), ("cold", 0.3)):
            series.append({"series": f'chokepoint_bottleneck_score{{service="shop", kind="{kind.kind}", target="{target}"}}', "values": f"{score}x10"})
        cases.append({"eval_time": "3m", "alertname": alert["alert"], "exp_alerts": []})  # not yet: for 5m
        cases.append(
            {
                "eval_time": "8m",
                "alertname": alert["alert"],
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": alert["labels"]["severity"], "service": "shop", "kind": kind.kind, "target": "hot"},
                        "exp_annotations": {
                            "summary": f"shop: {kind.title} on hot (score 0.90)",
                            "description": kind.meaning,
                            "runbook": kind.recommendation,
                        },
                    }
                ],
            }
        )
    test_file = tmp_path / "bottleneck-alerts-test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules.RULES_FILE)],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}],
            },
            allow_unicode=True,
        )
    )
    out = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
