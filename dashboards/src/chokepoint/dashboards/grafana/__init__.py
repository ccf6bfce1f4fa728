"""Grafana dashboards generated from the metric catalog (:mod:`.generate`) and pushed with grafana-client (:mod:`.push`)."""
