# lib.sh — sourced by the scripts of the test servers that run as one
# background process (mongo.sh, secantus.sh): the pid file, the port probe,
# waiting until the server listens, and a stop that waits for the process to
# exit (SIGTERM first, so the server closes its files; SIGKILL after 10 s).
#
# The sourcing script sets, before calling these:
#   SVC_NAME    the name in messages      SVC_PORT   the TCP port on 127.0.0.1
#   SVC_STATE   its state directory       (pid file, log and data live there)
# and defines svc_launch_cmd, which runs the server in the foreground.

svc_die() { echo "$SVC_NAME: $*" >&2; exit 1; }

svc_pid_file() { echo "$SVC_STATE/$SVC_NAME.pid"; }
svc_log_file() { echo "$SVC_STATE/$SVC_NAME.log"; }

svc_running_pid() {
  local pid f
  f=$(svc_pid_file)
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

svc_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$SVC_PORT") 2>/dev/null; }

svc_port_free_or_die() {
  if svc_port_open; then
    svc_die "port 127.0.0.1:$SVC_PORT is taken by another program (set $SVC_PORT_VAR)"
  fi
}

# Starts svc_launch_cmd in the background and waits up to 60 s until the port
# answers; on failure prints the log's tail and exits 1.
svc_launch() {
  local log
  log=$(svc_log_file)
  svc_launch_cmd >>"$log" 2>&1 </dev/null &
  echo $! >"$(svc_pid_file)"
  for _ in $(seq 1 600); do
    if svc_port_open; then
      echo "$SVC_NAME: listening on 127.0.0.1:$SVC_PORT (pid $(cat "$(svc_pid_file)"), log $log)"
      return 0
    fi
    svc_running_pid >/dev/null || break
    sleep 0.1
  done
  echo "$SVC_NAME: did not start listening on 127.0.0.1:$SVC_PORT; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  svc_stop >/dev/null 2>&1 || true
  exit 1
}

svc_stop() {
  local pid
  if pid=$(svc_running_pid); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    echo "$SVC_NAME: stopped (pid $pid)"
  fi
  rm -f "$(svc_pid_file)"
}

svc_status() {
  local pid
  if pid=$(svc_running_pid); then
    echo "$SVC_NAME: running on 127.0.0.1:$SVC_PORT (pid $pid)"
  else
    echo "$SVC_NAME: not running"
    return 1
  fi
}

# The usual commands; the script defines svc_install and svc_start_fresh.
svc_main() {
  case "${1:-}" in
  install) svc_install ;;
  start)
    if svc_running_pid >/dev/null; then
      echo "$SVC_NAME: already running on 127.0.0.1:$SVC_PORT (pid $(cat "$(svc_pid_file)"))"
      return 0
    fi
    svc_install
    svc_port_free_or_die
    rm -rf "$SVC_STATE"
    mkdir -p "$SVC_STATE/data"
    svc_launch ;;
  restart) # the same data: nothing is wiped
    [[ -d $SVC_STATE/data ]] || svc_die "nothing to restart in $SVC_STATE (run '$0 start' first)"
    svc_install
    svc_stop >/dev/null
    svc_port_free_or_die
    svc_launch ;;
  stop) svc_stop ;;
  status) svc_status ;;
  *) echo "usage: $0 install|start|restart|stop|status" >&2; exit 2 ;;
  esac
}
