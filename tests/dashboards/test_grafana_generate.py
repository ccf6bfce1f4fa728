"""chokepoint.dashboards.grafana.generate: dashboards as code, checked in, catalog names only."""

from __future__ import annotations

import json
import re

import yaml

from chokepoint.collector.catalog import METRICS
from chokepoint.dashboards.grafana import generate

EXPECTED_UIDS = {"chokepoint-overview", "chokepoint-saturation", "chokepoint-dependencies", "chokepoint-kafka", "chokepoint-bottlenecks"}


def test_checked_in_files_are_the_generated_ones():
    on_disk = {str(p.relative_to(generate.GRAFANA_DIR)) for p in generate.GRAFANA_DIR.rglob("*") if p.is_file()}
    rendered = generate.rendered_files()
    assert on_disk == set(rendered), "regenerate: chokepoint grafana generate"
    for rel, text in rendered.items():
        assert (generate.GRAFANA_DIR / rel).read_text() == text, f"{rel} is stale: run chokepoint grafana generate"


def test_stable_unique_uids_and_panel_ids():
    dashboards = generate.all_dashboards()
    assert {d["uid"] for d in dashboards} == EXPECTED_UIDS
    for d in dashboards:
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for p in d["panels"]:
            assert p["targets"], p["title"]
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24


def test_expressions_use_catalog_metrics_only():
    known = {m.sample_name for m in METRICS} | {f"{m.name}_{part}" for m in METRICS if m.type == "histogram" for part in ("bucket", "count", "sum")}
    used = set()
    for _uid, _title, expr in generate.all_expressions():
        for name in re.findall(r"\bchokepoint_[a-z0-9_]+", expr):
            assert name in known, f"{name} is not in chokepoint.collector.catalog"
            used.add(name)
    # every exported family appears somewhere in Grafana
    for m in METRICS:
        assert m.sample_name in used or f"{m.name}_bucket" in used, (
            f"catalog metric {m.name} has no Grafana panel: add one in chokepoint/dashboards/grafana/generate.py, then run chokepoint grafana generate"
        )


def test_provisioning_files_parse_and_point_at_the_datasource():
    ds = yaml.safe_load(generate.datasource_provisioning())
    assert ds["datasources"][0]["uid"] == generate.DATASOURCE_UID and ds["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load(generate.dashboard_provisioning())
    assert provider["providers"][0]["type"] == "file"
    model = json.loads((generate.GRAFANA_DIR / "dashboards" / "chokepoint-overview.json").read_text())
    assert model["templating"]["list"][0]["type"] == "datasource"
