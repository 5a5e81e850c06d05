#!/usr/bin/env bash
# build.sh — builds every libFuzzer target tests/fuzz/fuzz_<name>.c into
# ${B:-build}/fuzz/fuzz_<name> with clang -fsanitize=fuzzer,address,undefined.
# Idempotent (make decides what is out of date). Needs clang and its libFuzzer
# runtime (Debian: apt-get install clang).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
if ! command -v "${FUZZ_CC:-clang}" >/dev/null; then
  echo "build.sh: ${FUZZ_CC:-clang} not found (apt-get install -y clang)" >&2
  exit 2
fi
exec make -s --no-print-directory -j"$(nproc)" -f tests/fuzz/fuzz.mk B="$B" "$@"
