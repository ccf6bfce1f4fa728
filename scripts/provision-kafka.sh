#!/usr/bin/env bash
# Resolves the Apache Kafka broker (org.apache.kafka:kafka_2.13, version in
# scripts/kafka/pom.xml) and its runtime dependencies from Maven Central into
# $CHOKEPOINT_CACHE/kafka-VERSION (default ~/.cache/chokepoint), outside the repo.
# Reused when present (a `.complete` marker is written last).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${CHOKEPOINT_CACHE:-$HOME/.cache/chokepoint}"
version="${CHOKEPOINT_KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")}"
dest="$cache/kafka-$version"
[ -f "$dest/.complete" ] && exit 0
for tool in java mvn; do
  command -v "$tool" >/dev/null 2>&1 || { echo "provision-kafka: $tool not found: install openjdk-17-jre-headless and maven (apt-get)" >&2; exit 1; }
done
echo "provision: resolving Kafka $version broker jars from Maven Central into $dest"
t0=$SECONDS
rm -rf "$dest.partial"
if ! mvn -B -q -f "$here/kafka/pom.xml" -Dkafka.version="$version" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dest.partial" >/tmp/chokepoint-mvn.log 2>&1; then
  tail -20 /tmp/chokepoint-mvn.log >&2
  echo "provision-kafka: mvn could not resolve org.apache.kafka:kafka_2.13:$version (log: /tmp/chokepoint-mvn.log)" >&2
  exit 1
fi
ls "$dest.partial"/kafka_2.13-"$version".jar >/dev/null
rm -rf "$dest"; mv "$dest.partial" "$dest"; touch "$dest/.complete"
echo "provision: Kafka $version ready ($(ls "$dest" | wc -l) jars, $((SECONDS - t0))s)"
