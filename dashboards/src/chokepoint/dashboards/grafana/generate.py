"""Grafana dashboards as code: every panel's PromQL built from :mod:`chokepoint.semconv.catalog`.

Five dashboards with stable uids (safe to overwrite by uid):

=========================  ===============================================================
uid                        content
=========================  ===============================================================
chokepoint-overview        RED per route: rate, error ratio, p50/p90/p99, latency heatmap
chokepoint-saturation      worker/DB pools (used vs max, pending, wait p99, timeouts), runtime
chokepoint-dependencies    outbound latency/errors per dependency, breaker state and calls
chokepoint-kafka           consumer lag, time lag, lag growth, status per partition
chokepoint-bottlenecks     analyzer scores per kind/target, collector ingest health
=========================  ===============================================================

Panels use a ``datasource`` template variable (any Prometheus data source) and the
``service`` variable; the provisioning files declare a Prometheus data source with
uid ``chokepoint-prometheus`` (URL: ``CHOKEPOINT_PROMETHEUS_URL`` in the Grafana
environment, default ``http://127.0.0.1:9090``) and a file provider reading
``/var/lib/grafana/dashboards/chokepoint``.  Plain dicts rather than a Grafana SDK: the
JSON model is small and this keeps the generator free of extra dependencies.

Usage::

    chokepoint grafana generate            # rewrite dashboards/grafana/ in the source tree
    python -m chokepoint.dashboards.grafana.generate

A test regenerates and compares with the checked-in files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from chokepoint.semconv import catalog as c

GRAFANA_DIR = Path(__file__).resolve().parents[4] / "grafana"
DATASOURCE_UID = "chokepoint-prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
TAGS = ["chokepoint"]

SVC = 'service=~"$service"'


def _series(name: str, selector: str | None) -> str:
    """``name{selector}``, or the bare name for ``selector=None`` (all series)."""
    return name if selector is None else f"{name}{{{selector}}}"


def _rate(metric: c.Metric, by: str, selector: str | None = SVC) -> str:
    return f"sum by ({by}) (rate({_series(metric.sample_name, selector)}[$__rate_interval]))"


def _bucket_rate(metric: c.Metric, by: str, selector: str = SVC, window: str = "$__rate_interval") -> str:
    return f"sum by ({by}) (rate({metric.name}_bucket{{{selector}}}[{window}]))"


def _quantile(q: float, metric: c.Metric, by: str, selector: str = SVC, window: str = "$__rate_interval") -> str:
    return f"histogram_quantile({q}, {_bucket_rate(metric, f'{by}, le', selector, window)})"


def _ratio(errors: c.Metric, total: c.Metric, by: str, selector: str = SVC) -> str:
    return f"{_rate(errors, by, selector)}\n/\n{_rate(total, by, selector)}"


def _max(metric: c.Metric, by: str, selector: str | None = SVC) -> str:
    """The gauge's current value per ``by`` (max over the series a label set hides)."""
    return f"max by ({by}) ({_series(metric.name, selector)})"


BAR_GAUGE = {"displayMode": "gradient", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}}


class _Layout:
    """Assigns panel ids and grid positions (two panels per row unless ``w`` says otherwise)."""

    def __init__(self) -> None:
        self.next_id, self.x, self.y, self.row_h = 1, 0, 0, 0

    def place(self, w: int, h: int) -> tuple[int, dict]:
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        pid, self.next_id = self.next_id, self.next_id + 1
        return pid, pos


def _panel(
    layout: _Layout,
    title: str,
    targets: list[tuple[str, str]],
    unit: str = "short",
    kind: str = "timeseries",
    w: int = 12,
    h: int = 8,
    target_format: str = "",
    **extra,
) -> dict:
    pid, pos = layout.place(w, h)
    panel = {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": pos,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend, **({"format": target_format} if target_format else {})}
            for i, (expr, legend) in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    panel.update(extra)
    return panel


def _label_variable(label: str, selector: str | None = None) -> dict:
    """A multi-value ``$label`` variable (default All) over the request counter's ``label`` values."""
    query = f"label_values({_series(c.REQUESTS.sample_name, selector)}, {label})"
    return {
        "name": label,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": label},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
    }


def _variables(extra: list[dict] | None = None) -> dict:
    datasource = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "default", "value": "default"},
        "refresh": 1,
    }
    return {"list": [datasource, _label_variable("service"), *(extra or [])]}


def _dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict] | None = None) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": _variables(variables),
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": TAGS, "asDropdown": True, "title": "chokepoint"}],
        "panels": panels,
    }


# ------------------------------------------------------------------ the five dashboards
def overview() -> dict:
    lay = _Layout()
    route_sel = f'{SVC}, route=~"$route"'
    route_var = _label_variable("route", SVC)
    by = "service, route"
    panels = [
        _panel(lay, "Requests per second", [(_rate(c.REQUESTS, by, route_sel), "{{service}} {{route}}")], "reqps"),
        _panel(lay, "Error ratio", [(_ratio(c.REQUEST_ERRORS, c.REQUESTS, by, route_sel), "{{service}} {{route}}")], "percentunit"),
        _panel(
            lay,
            "Latency p50 / p90 / p99",
            [(_quantile(q, c.REQUEST_DURATION, by, route_sel), f"p{label} {{{{route}}}}") for q, label in ((0.5, "50"), (0.9, "90"), (0.99, "99"))],
            "s",
            w=24,
        ),
        _panel(
            lay,
            "Latency heatmap",
            [(_bucket_rate(c.REQUEST_DURATION, "le", route_sel), "{{le}}")],
            kind="heatmap",
            target_format="heatmap",
            w=24,
            options={"calculate": False, "yAxis": {"unit": "s"}, "color": {"scheme": "Viridis", "mode": "scheme"}, "cellGap": 1},
        ),
        _panel(
            lay,
            "Slowest routes (p99, last 5m)",
            [(f"topk(20, {_quantile(0.99, c.REQUEST_DURATION, by, window='5m')})", "{{service}} {{route}}")],
            "s",
            kind="bargauge",
            w=24,
            options=BAR_GAUGE,
        ),
        _panel(
            lay,
            "Time per request by component",
            [(_rate(c.BREAKDOWN_TIME, "component", route_sel), "{{component}}")],
            "s",
            w=24,
            fieldConfig={"defaults": {"unit": "s", "custom": {"stacking": {"mode": "normal"}, "fillOpacity": 40}}, "overrides": []},
        ),
    ]
    return _dashboard("chokepoint-overview", "chokepoint — Overview (RED)", "Rate, errors and duration per route", panels, [route_var])


def saturation() -> dict:
    lay = _Layout()
    by = "service, kind, pool"
    panels = [
        _panel(
            lay,
            "Pool members in use vs capacity",
            [(_max(c.POOL_USED, by), "{{pool}} used"), (_max(c.POOL_MAX, by), "{{pool}} max")],
        ),
        _panel(
            lay,
            "Pool saturation",
            [(f"{_max(c.POOL_USED, by)} / ({_max(c.POOL_MAX, by)} > 0)", "{{kind}} {{pool}}")],
            "percentunit",
        ),
        _panel(lay, "Callers waiting for a pool member", [(_max(c.POOL_PENDING, by), "{{kind}} {{pool}}")]),
        _panel(lay, "Pool wait p99", [(_quantile(0.99, c.POOL_WAIT, by), "{{kind}} {{pool}}")], "s"),
        _panel(lay, "Pool checkout timeouts per second", [(_rate(c.POOL_TIMEOUTS, by), "{{kind}} {{pool}}")], "ops"),
        _panel(
            lay,
            "CPU used and waited for (1.0 = one core)",
            [
                (_max(c.PROCESS_CPU, "service"), "{{service}} used"),
                (_max(c.PROCESS_CPU_RUN_QUEUE_WAIT, "service"), "{{service}} waiting for a CPU"),
            ],
            "percentunit",
        ),
        _panel(lay, "Resident memory", [(_max(c.PROCESS_RSS, "service"), "{{service}}")], "bytes"),
        _panel(lay, "GC pause p99", [(_quantile(0.99, c.GC_PAUSE, "service"), "{{service}}")], "s"),
        _panel(lay, "Event-loop lag p99", [(_quantile(0.99, c.EVENT_LOOP_LAG, "service"), "{{service}}")], "s"),
        _panel(lay, "Threads", [(_max(c.THREADS, "service"), "{{service}}")]),
    ]
    return _dashboard("chokepoint-saturation", "chokepoint — Saturation", "Worker and DB pools, CPU, memory, GC and event-loop lag", panels)


def dependencies() -> dict:
    lay = _Layout()
    by = "service, kind, target"
    state_mappings = [
        {"type": "value", "options": {str(i): {"text": s, "color": ("green", "yellow", "red")[i], "index": i} for i, s in enumerate(c.BREAKER_STATES)}}
    ]
    panels = [
        _panel(lay, "Calls per second per dependency", [(_rate(c.DEPENDENCY_CALLS, by), "{{kind}} {{target}}")], "ops"),
        _panel(lay, "Dependency error ratio", [(_ratio(c.DEPENDENCY_ERRORS, c.DEPENDENCY_CALLS, by), "{{kind}} {{target}}")], "percentunit"),
        _panel(lay, "Dependency latency p99", [(_quantile(0.99, c.DEPENDENCY_DURATION, by), "{{kind}} {{target}}")], "s"),
        _panel(lay, "Dependency latency p50", [(_quantile(0.5, c.DEPENDENCY_DURATION, by), "{{kind}} {{target}}")], "s"),
        _panel(
            lay,
            "Circuit breaker state",
            [(_max(c.BREAKER_STATE, "service, breaker"), "{{service}} {{breaker}}")],
            kind="state-timeline",
            w=24,
            fieldConfig={"defaults": {"unit": "short", "mappings": state_mappings, "color": {"mode": "thresholds"}}, "overrides": []},
        ),
        _panel(lay, "Breaker calls per second by result", [(_rate(c.BREAKER_CALLS, "service, breaker, result"), "{{breaker}} {{result}}")], "ops"),
        _panel(
            lay,
            "Breaker transitions",
            [(f"sum by (service, breaker, to_state) (increase({c.BREAKER_TRANSITIONS.sample_name}{{{SVC}}}[$__range]))", "{{breaker}} → {{to_state}}")],
        ),
    ]
    return _dashboard(
        "chokepoint-dependencies", "chokepoint — Dependencies and breakers", "Outbound latency and errors; circuit breakers Hystrix-style", panels
    )


def kafka() -> dict:
    lay = _Layout()
    by = "group, topic, partition"
    status_mappings = [{"type": "value", "options": {str(i): {"text": s, "index": i} for i, s in enumerate(c.LAG_STATUSES)}}]
    panels = [
        _panel(lay, "Consumer lag (messages)", [(_max(c.CONSUMER_LAG, by, None), "{{group}} {{topic}}/{{partition}}")]),
        _panel(lay, "Consumer time lag", [(_max(c.CONSUMER_TIME_LAG, by, None), "{{group}} {{topic}}/{{partition}}")], "s"),
        _panel(
            lay,
            "Lag growth (messages per second)",
            [(f"max by (group, topic, partition) (deriv({c.CONSUMER_LAG.name}[5m]))", "{{group}} {{topic}}/{{partition}}")],
        ),
        _panel(
            lay,
            "Consumer status",
            [(_max(c.CONSUMER_STATUS, by, None), "{{group}} {{topic}}/{{partition}}")],
            kind="state-timeline",
            fieldConfig={"defaults": {"mappings": status_mappings, "color": {"mode": "continuous-GrYlRd"}}, "overrides": []},
        ),
    ]
    return _dashboard("chokepoint-kafka", "chokepoint — Kafka consumer lag", "Lag per group/topic/partition and Burrow-style status", panels)


def bottlenecks() -> dict:
    lay = _Layout()
    panels = [
        _panel(
            lay,
            "Bottleneck score by kind and target",
            [(_max(c.BOTTLENECK_SCORE, "service, kind, target"), "{{kind}} {{target}}")],
            "percentunit",
            w=24,
        ),
        _panel(
            lay,
            "Current findings",
            [(f"sort_desc({_max(c.BOTTLENECK_SCORE, 'service, kind, target')})", "{{kind}} {{target}}")],
            "percentunit",
            kind="bargauge",
            w=24,
            options=BAR_GAUGE,
            fieldConfig={"defaults": {"unit": "percentunit", "min": 0, "max": 1}, "overrides": []},
        ),
        _panel(lay, "Spans ingested per second", [(_rate(c.INGEST_SPANS, "protocol", None), "{{protocol}}")], "ops", w=8),
        _panel(
            lay,
            "Metric points and log records ingested per second",
            [
                (_rate(c.INGEST_POINTS, "protocol", None), "points {{protocol}}"),
                (_rate(c.INGEST_LOG_RECORDS, "protocol", None), "log records {{protocol}}"),
            ],
            "ops",
            w=8,
        ),
        _panel(
            lay,
            "Rejected, dropped and analyzer rule errors per second",
            [
                (_rate(c.INGEST_REJECTED, "protocol, reason", None), "rejected {{protocol}} {{reason}}"),
                (_rate(c.INGEST_DROPPED, "reason", None), "dropped {{reason}}"),
                (_rate(c.ANALYZER_RULE_ERRORS, "kind", None), "rule errors {{kind}}"),
            ],
            "ops",
            w=8,
        ),
        _panel(
            lay,
            "Kafka ingest: records read per second, not committed yet, partitions held",
            [
                (_rate(c.KAFKA_INGEST_RECORDS, "topic", None), "read {{topic}}"),
                (f"sum by (topic) ({c.KAFKA_INGEST_UNCOMMITTED.name})", "not committed {{topic}}"),
                (f"sum by (group) ({c.KAFKA_INGEST_PARTITIONS.name})", "partitions of {{group}}"),
            ],
            w=24,
        ),
    ]
    return _dashboard("chokepoint-bottlenecks", "chokepoint — Bottleneck scores", "The analyzer's findings over time and the collector's own health", panels)


DASHBOARDS = (overview, saturation, dependencies, kafka, bottlenecks)


def all_dashboards() -> list[dict]:
    return [build() for build in DASHBOARDS]


def all_expressions() -> list[tuple[str, str, str]]:
    """``(dashboard uid, panel title, expr)`` for every query of every panel."""
    return [(d["uid"], p["title"], t["expr"]) for d in all_dashboards() for p in d["panels"] for t in p["targets"]]


def datasource_provisioning() -> str:
    return (
        "# Generated by chokepoint.dashboards.grafana.generate — do not edit by hand.\n"
        "apiVersion: 1\n"
        "datasources:\n"
        f"  - name: chokepoint-prometheus\n"
        "    type: prometheus\n"
        f"    uid: {DATASOURCE_UID}\n"
        "    access: proxy\n"
        "    url: ${CHOKEPOINT_PROMETHEUS_URL:-http://127.0.0.1:9090}\n"
        "    isDefault: true\n"
        "    jsonData:\n"
        "      timeInterval: 15s\n"
    )


def dashboard_provisioning() -> str:
    return (
        "# Generated by chokepoint.dashboards.grafana.generate — do not edit by hand.\n"
        "apiVersion: 1\n"
        "providers:\n"
        "  - name: chokepoint\n"
        "    folder: chokepoint\n"
        "    type: file\n"
        "    disableDeletion: false\n"
        "    allowUiUpdates: false\n"
        "    options:\n"
        "      path: /var/lib/grafana/dashboards/chokepoint\n"
    )


def rendered_files() -> dict[str, str]:
    """Relative path under ``dashboards/grafana/`` → file content."""
    files = {f"dashboards/{d['uid']}.json": json.dumps(d, indent=2, ensure_ascii=False) + "\n" for d in all_dashboards()}
    files["provisioning/datasources/chokepoint-prometheus.yml"] = datasource_provisioning()
    files["provisioning/dashboards/chokepoint.yml"] = dashboard_provisioning()
    return files


def write_all(root: Path | None = None) -> list[Path]:
    root = root or GRAFANA_DIR
    written = []
    for rel, text in rendered_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(p)
