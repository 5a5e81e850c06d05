#!/usr/bin/env bash
# services.sh — brings the test services up or down together: real Kafka
# (kafka.sh), the MongoDB-protocol servers (mongo.sh: mongo-java-server, the
# store's server for every end-to-end, fault and bench run; secantus.sh:
# SecantusDB, with sessions and transactions, for the barrier's transaction
# path and a second conformance run), and PostgreSQL for the barrier
# (postgres.sh). All listen on 127.0.0.1 only. Used by tests/run.sh and
# `make services-up/down`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

case "${1:-}" in
  install)
    bash "$here/kafka.sh" install
    bash "$here/mongo.sh" install
    bash "$here/secantus.sh" install
    bash "$here/postgres.sh" install ;;
  up)
    bash "$here/kafka.sh" start
    bash "$here/mongo.sh" start
    bash "$here/secantus.sh" start
    bash "$here/postgres.sh" start ;;
  down)
    bash "$here/postgres.sh" stop || true
    bash "$here/secantus.sh" stop || true
    bash "$here/mongo.sh" stop || true
    bash "$here/kafka.sh" stop || true ;;
  *) echo "usage: $0 install|up|down" >&2; exit 2 ;;
esac
