#!/usr/bin/env bash
# kafka.sh — a real Apache Kafka for the integration tests: one combined
# broker+controller in KRaft mode on 127.0.0.1, run from Maven Central's jars on
# the machine's JDK with a small heap.
#   kafka.sh install   resolve the jars into the cache (once; reused later)
#   kafka.sh start     format a fresh log dir, start, wait until it answers
#   kafka.sh restart   stop it if it runs, start it again on the SAME log dir
#                      (topics, messages and committed offsets kept)
#   kafka.sh stop      stop it
#   kafka.sh status
# Cache: ${DTMQ_CACHE:-$HOME/.cache/dtmq}/kafka-$VERSION/libs (outside the clone).
# State: ${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/kafka (wiped on start, kept on restart).
# Port: ${DTMQ_KAFKA_PORT:-19092} (controller on the next port).
set -euo pipefail

VERSION=3.7.2
here=$(cd "$(dirname "$0")" && pwd)
cache=${DTMQ_CACHE:-$HOME/.cache/dtmq}
libs=$cache/kafka-$VERSION/libs
state=${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/kafka
port=${DTMQ_KAFKA_PORT:-19092}
controller_port=$((port + 1))
pidfile=$state/kafka.pid

fail() { echo "kafka.sh: $*" >&2; exit 1; }

install() {
  if [ -f "$libs/kafka_2.13-$VERSION.jar" ] && [ -f "$libs/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || fail "Kafka cannot be had: mvn (Maven) is not installed"
  command -v java >/dev/null || fail "Kafka cannot be had: java (JDK) is not installed"
  echo "kafka.sh: resolving Apache Kafka $VERSION jars with Maven (first run only)"
  rm -rf "$libs"
  mkdir -p "$libs"
  if ! mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime >"$cache/kafka-mvn.log" 2>&1; then
    tail -20 "$cache/kafka-mvn.log" >&2
    fail "Kafka cannot be had: Maven could not resolve org.apache.kafka:kafka_2.13:$VERSION (log: $cache/kafka-mvn.log)"
  fi
  touch "$libs/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

write_config() {
  cat >"$state/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
CONF
  cat >"$state/log4j.properties" <<CONF
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
CONF
}

# Succeeds once the broker accepts TCP connections and answers a metadata request.
answers() {
  if command -v kcat >/dev/null; then
    kcat -b "127.0.0.1:$port" -L -m 2 >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

start() {
  install
  if running; then echo "kafka.sh: already running on 127.0.0.1:$port"; return 0; fi
  rm -rf "$state"
  mkdir -p "$state"
  write_config
  local cp="$libs/*" log4j="-Dlog4j.configuration=file:$state/log4j.properties"
  local id
  id=$(java -cp "$cp" "$log4j" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  java -cp "$cp" "$log4j" kafka.tools.StorageTool format -t "$id" \
    -c "$state/server.properties" >"$state/format.log" 2>&1 || {
    cat "$state/format.log" >&2; fail "cannot format the KRaft log dir $state/data"; }
  launch
}

# Stops the broker if it runs and starts it again on the log dir a previous
# start formatted: nothing is wiped or reformatted.
restart() {
  install
  [ -f "$state/server.properties" ] && [ -d "$state/data" ] ||
    fail "nothing to restart in $state (run 'kafka.sh start' first)"
  stop
  launch
}

# Runs the broker on $state's config and waits until it answers.
launch() {
  local cp="$libs/*" log4j="-Dlog4j.configuration=file:$state/log4j.properties"
  nohup java -Xms128m -Xmx512m -XX:+UseSerialGC -cp "$cp" "$log4j" kafka.Kafka \
    "$state/server.properties" >>"$state/kafka.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if answers; then echo "kafka.sh: Kafka $VERSION up on 127.0.0.1:$port"; return 0; fi
    running || break
    sleep 0.5
  done
  tail -20 "$state/kafka.log" >&2
  stop || true
  fail "Kafka did not come up on 127.0.0.1:$port within 60 s (log: $state/kafka.log)"
}

stop() {
  if [ -f "$pidfile" ]; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  status) if running; then echo "running on 127.0.0.1:$port"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 install|start|restart|stop|status" >&2; exit 2 ;;
esac
