#!/usr/bin/env bash
# check-unit.sh — the body of `make check-unit` (which builds the unit test
# binaries first): runs every tests/unit/* binary, sanitizer flavour, with no
# test service, and ends with "N passed, N failed" like tests/run.sh, whose
# run_binary it uses (tests/lib/run_lib.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
source tests/lib/run_lib.sh

test_env
run_unit_tests
summary
[ "$failed" -eq 0 ]
