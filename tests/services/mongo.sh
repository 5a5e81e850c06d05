#!/usr/bin/env bash
# mongo.sh — the MongoDB-protocol server of the tests and benchmarks of dtmq's
# MongoDB store: mongo-java-server 1.47.0 on its H2 file backend (Maven
# Central), on the machine's JDK, on 127.0.0.1 only. Its guarded updates are
# atomic (tests/store/conformance.c races them); it has no sessions, so the
# barrier's transaction path runs on SecantusDB instead (secantus.sh).
#
#   mongo.sh install   resolve the jars and compile the launcher into the cache
#   mongo.sh start     start it on $DTMQ_MONGO_PORT (default 27018), fresh data
#   mongo.sh restart   stop it if it runs, start it again on the SAME data
#   mongo.sh stop      stop it (SIGTERM: the data file is closed cleanly)
#   mongo.sh status    say whether it runs
#
# Cache: ${DTMQ_CACHE:-$HOME/.cache/dtmq}/mongo-java-server-1.47.0 (outside the clone).
# State (data file, pid file, log): ${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/mongo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

VERSION=1.47.0
CACHE=${DTMQ_CACHE:-$HOME/.cache/dtmq}
HOME_DIR=$CACHE/mongo-java-server-$VERSION
SVC_NAME=mongo
SVC_PORT=${DTMQ_MONGO_PORT:-27018}
SVC_PORT_VAR=DTMQ_MONGO_PORT
SVC_STATE=${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/mongo

# The jars once; the launcher again whenever its source changed.
svc_install() {
  if [[ ! -f $HOME_DIR/libs/.complete ]]; then
    command -v mvn >/dev/null || svc_die "mongo-java-server cannot be had: mvn (Maven) is not installed"
    echo "mongo: resolving mongo-java-server $VERSION with Maven (first run only)"
    rm -rf "$HOME_DIR/libs"
    mkdir -p "$HOME_DIR/libs"
    if ! mvn -q -B -f "$here/mongo/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$HOME_DIR/libs" -DincludeScope=runtime >"$HOME_DIR/mvn.log" 2>&1; then
      tail -20 "$HOME_DIR/mvn.log" >&2
      svc_die "mongo-java-server cannot be had: Maven could not resolve it (log: $HOME_DIR/mvn.log)"
    fi
    touch "$HOME_DIR/libs/.complete"
  fi
  if ! cmp -s "$here/mongo/MongoTestServer.java" "$HOME_DIR/classes/MongoTestServer.java"; then
    command -v javac >/dev/null || svc_die "cannot compile the launcher: javac (JDK) is not installed"
    rm -rf "$HOME_DIR/classes"
    mkdir -p "$HOME_DIR/classes"
    javac -d "$HOME_DIR/classes" -cp "$HOME_DIR/libs/*" "$here/mongo/MongoTestServer.java" ||
      svc_die "cannot compile $here/mongo/MongoTestServer.java"
    cp "$here/mongo/MongoTestServer.java" "$HOME_DIR/classes/"
  fi
}

svc_launch_cmd() {
  exec java -Xms64m -Xmx1g -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$HOME_DIR/classes:$HOME_DIR/libs/*" MongoTestServer 127.0.0.1 "$SVC_PORT" "$SVC_STATE/data/dtmq.mv"
}

svc_main "$@"
