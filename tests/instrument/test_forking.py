"""A worker forked while the parent is exporting metrics exports its own (chokepoint.instrument.forking).

The sink holds the parent's first export open until the child has been forked, so the fork
lands inside the export every time; the child then records and must reach the sink under its
own ``service.instance.id``.
"""

from __future__ import annotations

import os
import threading

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from chokepoint.instrument.compat import exporter_connections, reset_reader_export_in_child
from chokepoint.instrument.forking import reinit_metric_export_after_fork
from otlp_sink import OtlpSink


def test_child_forked_during_an_export_exports_on_its_own():
    with OtlpSink() as sink:
        in_export, forked = threading.Event(), threading.Event()
        add_metrics = sink._add_metrics

        def held_first(body):
            if not in_export.is_set():
                in_export.set()
                forked.wait(10)
            add_metrics(body)

        sink._add_metrics = held_first
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{sink.endpoint}/v1/metrics", timeout=5), export_interval_millis=200)
        reinit_metric_export_after_fork(reader)
        provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "forked"}))
        counter = provider.get_meter("test").create_counter("forked.calls")
        counter.add(1, {"process": "parent"})
        assert in_export.wait(10)  # the parent is inside its export now, holding the export lock
        pid = os.fork()
        if pid == 0:  # the child: record, let two intervals pass, leave without running pytest's teardown
            try:
                counter.add(1, {"process": "child"})
                threading.Event().wait(1.5)
            finally:
                os._exit(0)
        forked.set()
        os.waitpid(pid, 0)
        child_points = sink.wait_for(lambda s: [p for p in s.all_points("forked.calls") if p.attributes.get("process") == "child"], timeout_s=10)
        provider.shutdown()
    child_ids = {p.resource["service.instance.id"] for p in child_points}
    all_ids = {p.resource["service.instance.id"] for p in sink.all_points("forked.calls")}
    assert len(child_ids) == 1 and len(all_ids) == 2  # the child under its own instance id, next to the parent


def test_this_sdk_keeps_the_export_lock_and_session_where_the_reset_looks():
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint="http://127.0.0.1:9/v1/metrics"), export_interval_millis=60_000)
    try:
        pooled = exporter_connections(reader._exporter)  # the parent's pooled sockets the child must close
        assert pooled is not None and (getattr(pooled, "adapters", None) or hasattr(pooled, "clear")), pooled
        assert reset_reader_export_in_child(reader)  # an SDK that moved either would leave forked workers silent again
    finally:
        reader.shutdown()
