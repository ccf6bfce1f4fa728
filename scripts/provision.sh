#!/usr/bin/env bash
# Installs the real services chokepoint's tests and demo run against, idempotently:
#   PostgreSQL, Redis, MariaDB, Prometheus + promtool, Chromium + chromedriver (Debian packages) and the Kafka broker
#   jars (Maven Central, via scripts/provision-kafka.sh).
# Already-installed parts are skipped in well under a second. Needs apt-get (as root or
# with sudo) for what is missing; otherwise it fails with one line saying what to install.
#
# Usage: scripts/provision.sh [postgres] [redis] [mariadb] [prometheus] [chromium] [kafka]   (default: all)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(postgres redis mariadb prometheus chromium kafka)

missing_pkgs=()
need() { # need PACKAGE CHECK-COMMAND...
  local pkg=$1; shift
  if ! "$@" >/dev/null 2>&1; then missing_pkgs+=("$pkg"); fi
}
has_initdb() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

for part in "${wanted[@]}"; do
  case "$part" in
    postgres)   need postgresql has_initdb ;;
    redis)      need redis-server command -v redis-server ;;
    mariadb)    need mariadb-server command -v mariadb-install-db ;;
    prometheus) need prometheus command -v prometheus; need prometheus command -v promtool ;;
    chromium)   need chromium command -v chromium; need chromium-driver command -v chromedriver ;;
    kafka)      need openjdk-17-jre-headless command -v java; need maven command -v mvn ;;
    *) echo "provision: unknown part '$part' (postgres, redis, mariadb, prometheus, chromium, kafka)" >&2; exit 2 ;;
  esac
done
need iproute2 command -v ss  # the accept-backlog tests read `ss -ltn` as ground truth

if [ ${#missing_pkgs[@]} -gt 0 ]; then
  # unique, stable order
  mapfile -t missing_pkgs < <(printf '%s\n' "${missing_pkgs[@]}" | awk '!seen[$0]++')
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "provision: missing ${missing_pkgs[*]} and no apt-get here: install them with your package manager" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "provision: missing ${missing_pkgs[*]}: run \`sudo apt-get install -y ${missing_pkgs[*]}\`" >&2; exit 1
    fi
  fi
  echo "provision: installing ${missing_pkgs[*]} (apt-get)"
  t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  if ! $sudo apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/tmp/chokepoint-apt.log 2>&1; then
    tail -20 /tmp/chokepoint-apt.log >&2
    echo "provision: apt-get install ${missing_pkgs[*]} failed (log: /tmp/chokepoint-apt.log)" >&2
    exit 1
  fi
  echo "provision: apt packages installed in $((SECONDS - t0))s"
fi

# Debian's postgresql package starts a default cluster on 5432; the tests use their own
# throwaway clusters, so the default one is not needed (and is left as the system has it).

for part in "${wanted[@]}"; do
  if [ "$part" = kafka ]; then "$here/provision-kafka.sh"; fi
done

# telemetrygen (Go OTLP client for the collector's integration tests), with the default set only
if [ $# -eq 0 ]; then "$here/provision-telemetrygen.sh"; fi

# the OpenTelemetry Collector (OTLP → Kafka / OTLP / spanmetrics → Prometheus) for the scale-out
# tests and the ingest benchmark, built with the Collector Builder (~9 min from an empty Go cache)
if [ $# -eq 0 ]; then "$here/provision-otelcol.sh"; fi
