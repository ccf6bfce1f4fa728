#!/usr/bin/env bash
# Builds a real OpenTelemetry Collector (`otelcol-chokepoint`) into $CHOKEPOINT_CACHE/bin
# (default ~/.cache/chokepoint/bin) with the OpenTelemetry Collector Builder
# (go.opentelemetry.io/collector/cmd/builder) from the Go module proxy, using the manifest
# scripts/otelcol/builder-config.yaml (OTLP receiver, batch processor, kafka, otlp, load-balancing, debug and
# Prometheus exporters, spanmetrics connector; every module at one release).
# The scale-out integration tests, the docker-compose `scale` profile and the ingest
# benchmark's peer run this binary.
# Idempotent: skipped when the binary built from the same manifest is present (the marker
# holds the manifest's checksum, so editing the manifest rebuilds).
#
# Environment: CHOKEPOINT_CACHE (cache root), CHOKEPOINT_OTELCOL_BUILDER_VERSION (default
# below; keep it at the manifest's core release), GOMODCACHE/GOCACHE as Go reads them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
manifest="$here/otelcol/builder-config.yaml"
cache="${CHOKEPOINT_CACHE:-$HOME/.cache/chokepoint}"
builder_version="${CHOKEPOINT_OTELCOL_BUILDER_VERSION:-v0.148.0}"
bindir="$cache/bin"
sum="$( (cat "$manifest"; echo "$builder_version") | sha256sum | cut -c1-16)"
marker="$bindir/.otelcol-chokepoint-$sum"
[ -x "$bindir/otelcol-chokepoint" ] && [ -f "$marker" ] && exit 0
command -v go >/dev/null 2>&1 || { echo "provision-otelcol: go not found: install Go 1.24+ (https://go.dev/dl or apt-get install golang)" >&2; exit 1; }
echo "provision: building the OpenTelemetry Collector (builder $builder_version, $manifest) into $bindir"
t0=$SECONDS
work="$cache/otelcol-build"
log=/tmp/chokepoint-otelcol.log
rm -rf "$work"; mkdir -p "$work/bin" "$bindir"
if ! GOBIN="$work/bin" CGO_ENABLED=0 go install "go.opentelemetry.io/collector/cmd/builder@$builder_version" >"$log" 2>&1; then
  tail -20 "$log" >&2
  echo "provision-otelcol: go install builder@$builder_version failed (log: $log)" >&2
  exit 1
fi
if ! (cd "$work" && CGO_ENABLED=0 "$work/bin/builder" --config="$manifest") >>"$log" 2>&1; then
  tail -20 "$log" >&2
  echo "provision-otelcol: the builder failed (log: $log)" >&2
  exit 1
fi
install -m 0755 "$work/otelcol-chokepoint/otelcol-chokepoint" "$bindir/otelcol-chokepoint"
rm -rf "$work"
rm -f "$bindir"/.otelcol-chokepoint-*; touch "$marker"
echo "provision: otelcol-chokepoint ready ($((SECONDS - t0))s)"
