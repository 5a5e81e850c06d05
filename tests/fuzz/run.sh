#!/usr/bin/env bash
# run.sh — builds the libFuzzer targets (tests/fuzz/build.sh, idempotent) and,
# for each target tests/fuzz/fuzz_<name>.c:
#   1. runs it once over every input in tests/fuzz/regressions/<name>/
#      (inputs that once crashed it), then
#   2. fuzzes for DTMQ_FUZZ_SECONDS (default 15) seconds, starting from a
#      scratch copy of tests/fuzz/corpus/<name>/ in ${B:-build}/fuzz/run/<name>/
#      (the repository is never written to).
# A crash, sanitizer report, leak or timeout fails the target; its reproducer
# is kept in ${B:-build}/fuzz/run/<name>/artifacts/ and its path printed.
#
#   tests/fuzz/run.sh                 every target
#   tests/fuzz/run.sh query base64    only these
#   DTMQ_FUZZ_SECONDS=300 tests/fuzz/run.sh config
#
# The last line is a Check-style summary, one check per target:
#   100%: Checks: 5, Failures: 0, Errors: 0
# Exit 0 only when every target passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
export B
secs=${DTMQ_FUZZ_SECONDS:-15}
fz=$B/fuzz
# LeakSanitizer on (libFuzzer reports leaks per input); UBSan stops at the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in tests/fuzz/fuzz_*.c; do
    n=$(basename "$src" .c)
    targets+=("${n#fuzz_}")
  done
fi
total=${#targets[@]}

echo "== fuzz: build (clang, -fsanitize=fuzzer,address,undefined)"
if ! bash tests/fuzz/build.sh; then
  echo "tests/fuzz/build.sh:0:E:fuzz:build:0: the fuzz targets did not build"
  echo "0%: Checks: $total, Failures: 0, Errors: $total"
  exit 1
fi

failures=0
lines=()

fail_target() { # NAME WHAT ARTIFACT_DIR LOG [REPRODUCER]
  local name=$1 what=$2 adir=$3 log=$4 repro=${5:-}
  failures=$((failures + 1))
  grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY:' "$log" | head -5
  [ -z "$repro" ] && repro=$(find "$adir" -type f 2>/dev/null | head -5 | tr '\n' ' ')
  echo "tests/fuzz/fuzz_$name.c:0:F:fuzz:$name:0: $what; reproducer: ${repro:-none (see $log)}"
  [ -n "$repro" ] && echo "  reproduce: $fz/fuzz_$name ${repro%% *}"
  lines+=("FAIL  fuzz/$name: $what, log $log")
}

for name in "${targets[@]}"; do
  bin=$fz/fuzz_$name
  work=$fz/run/$name
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  echo "== fuzz/$name"
  if [ ! -x "$bin" ]; then
    failures=$((failures + 1))
    echo "tests/fuzz/fuzz_$name.c:0:F:fuzz:$name:0: no such target ($bin)"
    lines+=("FAIL  fuzz/$name: no such target")
    continue
  fi

  # 1. the regression inputs, each executed once
  reg=tests/fuzz/regressions/$name
  regs=()
  if [ -d "$reg" ]; then
    while IFS= read -r -d '' f; do regs+=("$f"); done < <(find "$reg" -type f ! -name '*.md' -print0 | sort -z)
  fi
  if [ ${#regs[@]} -gt 0 ]; then
    "$bin" -timeout=30 -artifact_prefix="$work/artifacts/" "${regs[@]}" >"$work/regressions.log" 2>&1
    if [ $? -ne 0 ]; then
      # libFuzzer names each file as it runs it: the last one named is the culprit
      culprit=$(sed -n 's/^Running: //p' "$work/regressions.log" | tail -1)
      fail_target "$name" "a regression input fails again" "$work/artifacts" \
        "$work/regressions.log" "$culprit"
      continue
    fi
  fi

  # 2. bounded fuzzing from a scratch copy of the seed corpus
  [ -d tests/fuzz/corpus/$name ] && cp tests/fuzz/corpus/$name/* "$work/corpus/" 2>/dev/null
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)
  corp=$(find "$work/corpus" -type f | wc -l)
  if [ $rc -ne 0 ] || [ -n "$(find "$work/artifacts" -type f)" ]; then
    fail_target "$name" "failed (crash, sanitizer report, leak or timeout) after ${execs:-?} runs, exit $rc" "$work/artifacts" "$work/fuzz.log"
    continue
  fi
  echo "  ${execs:-?} runs in ${secs}s, ${#regs[@]} regression inputs, corpus $corp inputs"
  lines+=("ok    fuzz/$name: ${execs:-?} runs, ${#regs[@]} regressions")
done

echo
for l in "${lines[@]}"; do echo "  $l"; done
passed=$((total - failures))
echo "$((total > 0 ? passed * 100 / total : 100))%: Checks: $total, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
