"""chokepoint.collector — the sidecar.

Receives OTLP (gRPC on 127.0.0.1:4317, HTTP on 127.0.0.1:4318) from any OpenTelemetry
SDK, aggregates latency into mergeable relative-error sketches per time bucket, keeps
pool, breaker, consumer-lag and runtime series and a bounded set of slow traces, runs
the bottleneck analyzer, and exposes ``/metrics`` and the REST API on 127.0.0.1:8787.

The Prometheus metric names, finding kinds and API fields it exposes are defined here
and imported by the dashboards, the Grafana generator and the alert rules.
"""
