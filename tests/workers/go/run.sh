#!/usr/bin/env bash
# run.sh — the Go worker library's tests (connectors/go, tests/workers/go):
# builds them with the Go toolchain (modules from the module cache,
# ~/go/pkg/mod, and the build cache, ~/.cache/go-build: both outside the
# clone, created by go when missing), runs them with `go test -json` against
# the test services, prints one line per test and, as its LAST line, Check's
# summary "P%: Checks: N, Failures: F, Errors: E" (a build failure or a test
# binary that dies counts as an error). Exit 0 only when every test passed.
#
# Environment (tests/lib/run_lib.sh's test_env sets it):
#   DTMQ_TEST_KAFKA     Kafka bootstrap, host:port
#   DTMQ_TEST_POSTGRES  libpq connection string of the test database
#   DTMQ_TEST_BIN       the dtmq binary (relative to the repository's root, or absolute)
#   DTMQ_GO_TEST_RUN    optional: a -run regex (one test while developing)
#
#   bash tests/workers/go/run.sh        # from the repository's root
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 1
root=$PWD
here=tests/workers/go
log_dir=${B:-build}/test-logs
mkdir -p "$log_dir"
json=$log_dir/workers_go.json

fatal() { # the run cannot happen: one error, the summary, exit 1
  echo "$here/run.sh:0:E:setup: $1"
  echo "0%: Checks: 1, Failures: 0, Errors: 1"
  exit 1
}

for v in DTMQ_TEST_KAFKA DTMQ_TEST_POSTGRES DTMQ_TEST_BIN; do
  [ -n "${!v:-}" ] || fatal "$v is not set (tests/lib/run_lib.sh's test_env sets it)"
done
case $DTMQ_TEST_BIN in /*) ;; *) DTMQ_TEST_BIN=$root/$DTMQ_TEST_BIN ;; esac
export DTMQ_TEST_BIN
[ -x "$DTMQ_TEST_BIN" ] || fatal "$DTMQ_TEST_BIN is missing (make check builds it)"

# Go 1.26 or newer: franz-go v1.22.3 needs it (Debian 12's golang is 1.19)
command -v go >/dev/null || fatal "the Go toolchain (go 1.26 or newer) is not installed"
gov=$(go env GOVERSION 2>/dev/null | sed -E 's/^go([0-9]+)\.([0-9]+).*/\1 \2/')
read -r major minor <<<"$gov"
if [ -z "${minor:-}" ] || [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 26 ]; }; then
  fatal "go $(go env GOVERSION) is too old: connectors/go needs go 1.26 or newer"
fi

# -mod=readonly: the committed go.mod and go.sum must be complete (a fresh
# clone downloads exactly what they name); GOTOOLCHAIN=local: never fetch
# another toolchain.
export GOFLAGS="-mod=readonly" GOTOOLCHAIN=local
run=()
[ -n "${DTMQ_GO_TEST_RUN:-}" ] && run=(-run "$DTMQ_GO_TEST_RUN")
( cd "$here" && timeout 300 go test -count=1 -timeout 240s -json "${run[@]}" . ) >"$json" 2>"$json.stderr"
rc=$?

python3 - "$json" "$json.stderr" "$rc" "$here" <<'PY'
import json, sys
path, errpath, rc, here = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
results, output, build_output = {}, {}, []
for line in open(path, errors="replace"):
    try:
        ev = json.loads(line)
    except ValueError:
        build_output.append(line.rstrip("\n"))
        continue
    test, action = ev.get("Test"), ev.get("Action")
    if ev.get("ImportPath"):          # go build events (-json reports build output too)
        if ev.get("Output"):
            build_output.append(ev["Output"].rstrip("\n"))
        continue
    if not test:
        continue
    if action == "output":
        output.setdefault(test, []).append(ev.get("Output", ""))
    elif action in ("pass", "fail", "skip"):
        results[test] = (action, ev.get("Elapsed", 0))
checks = failures = errors = 0
for test, (action, elapsed) in results.items():
    checks += 1
    if action == "pass":
        print("ok    %s (%.1fs)" % (test, elapsed))
    else:  # a skip is not a pass: every test here must run
        failures += 1
        print("%s/%s_test.go:0:F:%s: %s (%.1fs)" % (here, "workers", test, action.upper(), elapsed))
        for l in output.get(test, [])[-40:]:
            print("      " + l.rstrip("\n"))
if rc != 0 and failures == 0:
    # the build failed, or the test binary died (timeout, panic) outside a test
    errors += 1
    print("%s/run.sh:0:E:go test: exit %d without a failing test" % (here, rc))
    for l in (build_output + open(errpath, errors="replace").read().splitlines())[-40:]:
        print("      " + l)
if checks == 0 and errors == 0:
    errors += 1
    print("%s/run.sh:0:E:go test: no test ran" % here)
total = checks + (1 if errors and checks == 0 else 0)
bad = failures + errors
pct = (total - bad) * 100 // total if total else 0
print("%d%%: Checks: %d, Failures: %d, Errors: %d" % (pct if pct > 0 else 0, total, failures, errors))
sys.exit(0 if bad == 0 else 1)
PY
