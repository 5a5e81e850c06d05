#!/usr/bin/env bash
# run.sh — tests tests/preflight/preflight.sh: on this machine (after
# install-deps) it passes silently; with a PATH that lacks the compilers and
# tools it fails, naming the Debian package of each missing command on a line
# of its own. Prints a Check-style summary line for tests/run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d /tmp/dtmq-preflight-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
checks=0 failures=0
check() { # name command...
  checks=$((checks + 1))
  if "${@:2}" >"$tmp/check.txt" 2>&1; then echo "ok   $1"; else
    failures=$((failures + 1)); echo "tests/preflight/run.sh:0:F:preflight:$1:0: failed"; cat "$tmp/check.txt"; fi
}

check "passes silently on this machine" sh -c 'out=$(bash tests/preflight/preflight.sh 2>&1) && [ -z "$out" ]'

# A PATH with only what the script itself runs on: no gcc, clang, make, ...
mkdir -p "$tmp/bin"
for c in bash cut; do ln -s "$(command -v $c)" "$tmp/bin/$c"; done
PATH="$tmp/bin" bash tests/preflight/preflight.sh >"$tmp/out.txt" 2>&1
rc=$?
check "fails without the tools" test "$rc" -eq 1
for pkg in gcc make pkg-config clang valgrind kcat sqlite3 default-jdk-headless maven golang-go nodejs; do
  check "names the package $pkg" grep -q "install the Debian package $pkg " "$tmp/out.txt"
done
check "one line per missing piece" test "$(grep -c '^preflight: missing ' "$tmp/out.txt")" -eq "$(wc -l <"$tmp/out.txt")"

pct=$(( checks > 0 ? (checks - failures) * 100 / checks : 0 ))
echo "${pct}%: Checks: $checks, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
