#!/usr/bin/env bash
# run.sh — the deployment file is valid: docker-compose (Debian's package; no
# Docker engine is needed here) parses docker/docker-compose.yml, resolves its
# services and their wiring. The Dockerfile itself cannot be built without an
# engine. Prints a Check-style summary line for tests/run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
checks=0 failures=0
check() { # name command...
  checks=$((checks + 1))
  if out=$("${@:2}" 2>&1); then echo "ok   $1"; else
    failures=$((failures + 1)); echo "tests/docker/run.sh:0:F:docker:$1:0: $out"; fi
}
compose="docker-compose -f docker/docker-compose.yml"
check "compose file is valid" $compose config -q
check "services: kafka, mongo, dtmq1, dtmq2" sh -c "[ \"\$($compose config --services | sort | tr '\n' ' ')\" = 'dtmq1 dtmq2 kafka mongo ' ]"
check "dtmq uses the MongoDB replica set and Kafka" sh -c "$compose config | grep -q 'DTMQ_STORE: mongodb://mongo:27017/dtmq?replicaSet=rs0' && $compose config | grep -q 'DTMQ_KAFKA: kafka:9092'"
pct=$(( checks > 0 ? (checks - failures) * 100 / checks : 0 ))
echo "${pct}%: Checks: $checks, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
