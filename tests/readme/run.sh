#!/usr/bin/env bash
# run.sh — the README's quick start works as written: `make run` brings dtmq
# up on its defaults, and every `curl` line of the README's shell blocks
# answers with a 2xx and JSON. Prints a Check-style summary for tests/run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
work=$(mktemp -d /tmp/dtmq-readme-XXXXXX)
checks=0 failures=0
check() { # name command...
  checks=$((checks + 1))
  if out=$("${@:2}" 2>&1); then echo "ok   $1"; else
    failures=$((failures + 1)); echo "tests/readme/run.sh:0:F:readme:$1:0: ${out:0:400}"; fi
}
cleanup() {
  [ -n "${pid:-}" ] && kill -TERM -- "-$pid" 2>/dev/null
  sleep 1
  rm -rf "$work"
  rm -f dtmq.db dtmq.db-wal dtmq.db-shm
}
trap cleanup EXIT
if curl -s -o /dev/null http://127.0.0.1:36789/api/ping; then
  echo "tests/readme/run.sh:0:E:readme:port:0: port 36789 is taken; the quick start needs it"
  echo "0%: Checks: 1, Failures: 0, Errors: 1"
  exit 1
fi
rm -f dtmq.db dtmq.db-wal dtmq.db-shm
setsid make -s run B="$B" >"$work/run.log" 2>&1 &
pid=$!
up=0
for _ in $(seq 1 600); do
  curl -s -o /dev/null http://127.0.0.1:36789/api/ping && { up=1; break; }
  sleep 0.2
done
check "make run brings dtmq up on port 36789" test "$up" = 1
check "make run prints the HTTP address and the embedded Kafka bootstrap" \
  sh -c "grep -q 'serving HTTP on http://' '$work/run.log' && grep -q 'kafka (embedded): bootstrap 127.0.0.1:' '$work/run.log'"
# every curl line of the README's ```sh blocks, as written
awk '/^```sh/{on=1; next} /^```/{on=0} on' README.md | sed -n '/^curl /,/}'"'"'\?$/p' >"$work/lines.txt"
python3 - "$work/lines.txt" "$work" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
cmds, cur = [], ''
for line in text.splitlines():
    if line.startswith('curl ') and cur:
        cmds.append(cur); cur = ''
    cur += (line + '\n')
if cur: cmds.append(cur)
for i, c in enumerate(cmds):
    c = re.sub(r'\s+#.*$', '', c.strip(), flags=re.M)
    open(f"{sys.argv[2]}/cmd{i}.sh", 'w').write(c.replace('curl ', 'curl -sS -f ', 1) + '\n')
PY
n=0
for f in "$work"/cmd*.sh; do
  [ -e "$f" ] || continue
  n=$((n + 1))
  check "README: $(head -c 60 "$f" | tr '\n' ' ')" sh -c "sh '$f' | python3 -c 'import json,sys; json.load(sys.stdin)'"
done
check "the README has curl examples to run" test "$n" -ge 3
pct=$(( checks > 0 ? (checks - failures) * 100 / checks : 0 ))
echo "${pct}%: Checks: $checks, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
