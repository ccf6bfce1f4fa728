"""chokepoint.dashboards — what people look at.

- the Dash live dashboard (127.0.0.1:8050), reading only the collector's REST API;
- Grafana dashboards generated from the collector's metric catalog;
- Prometheus recording and alert rules, checked with ``promtool``.
"""
