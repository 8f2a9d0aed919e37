#!/usr/bin/env bash
# Creates every IndexPilot topic and its poison topic (idempotent).
# Partitions: the unit of parallelism per consumer group; keys are target names.
set -euo pipefail
bootstrap="${1:-localhost:9092}"
partitions="${PARTITIONS:-6}"
types=(querystat.observed.v1 tablestat.observed.v1 appstat.observed.v1 index_candidate.scored.v1 index_decision.made.v1 index_build.completed.v1 index_build.failed.v1 index_removal.proposed.v1 index_removal.completed.v1 index_validation.completed.v1 control.bypass_changed.v1)
for t in "${types[@]}"; do
  for topic in "indexpilot.$t" "indexpilot.$t.poison"; do
    /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists \
      --topic "$topic" --partitions "$partitions" --replication-factor 1
  done
done
