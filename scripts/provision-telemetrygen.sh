#!/usr/bin/env bash
# Builds telemetrygen (a Go OTLP load generator from opentelemetry-collector-contrib) into
# $CHOKEPOINT_CACHE/bin (default ~/.cache/chokepoint/bin) with `go install` from the Go module
# proxy. The collector's integration tests use it as a non-Python OTLP client (gRPC and HTTP).
# Idempotent: skipped when the binary of the pinned version is present.
#
# Environment: CHOKEPOINT_CACHE (cache root), CHOKEPOINT_TELEMETRYGEN_VERSION (default below).
set -euo pipefail
cache="${CHOKEPOINT_CACHE:-$HOME/.cache/chokepoint}"
version="${CHOKEPOINT_TELEMETRYGEN_VERSION:-v0.161.0}"
bindir="$cache/bin"
marker="$bindir/.telemetrygen-$version"
[ -x "$bindir/telemetrygen" ] && [ -f "$marker" ] && exit 0
command -v go >/dev/null 2>&1 || { echo "provision-telemetrygen: go not found: install Go 1.24+ (https://go.dev/dl or apt-get install golang)" >&2; exit 1; }
echo "provision: building telemetrygen $version with go install into $bindir"
t0=$SECONDS
mkdir -p "$bindir"
if ! GOBIN="$bindir" CGO_ENABLED=0 go install \
      "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$version" >/tmp/chokepoint-telemetrygen.log 2>&1; then
  tail -20 /tmp/chokepoint-telemetrygen.log >&2
  echo "provision-telemetrygen: go install telemetrygen@$version failed (log: /tmp/chokepoint-telemetrygen.log)" >&2
  exit 1
fi
rm -f "$bindir"/.telemetrygen-*; touch "$marker"
echo "provision: telemetrygen $version ready ($((SECONDS - t0))s)"
