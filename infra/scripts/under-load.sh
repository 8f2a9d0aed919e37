#!/usr/bin/env bash
# Runs one test over and over while the whole suite (make test) loads the
# machine, and prints how often it passed. A test that fails here and not
# alone is a product bug under load until proven otherwise.
#
#   infra/scripts/under-load.sh <module dir> <test name regexp> [cpu]
#   make under-load                       # TestRunAllOnTheMemoryBus, -cpu 1
#
# The test runs in batches of 20 (-count 20 -cpu <cpu>) until make test
# ends, at least one batch. Logs are kept in a temporary directory, named
# at the end. Exits 1 if a run of the test or the suite failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 <module dir> <test regexp> [cpu]" >&2; exit 2; }
mod="$1" test="$2" cpu="${3:-1}"
[ -d "$mod" ] || { echo "under-load: no module directory $mod" >&2; exit 2; }
logs="$(mktemp -d)"
make test >"$logs/suite.log" 2>&1 &
suite=$!
pass=0 fail=0 batch=0
while :; do
  batch=$((batch + 1))
  (cd "$mod" && go test . -run "$test" -count 20 -cpu "$cpu" -v -timeout 60m) >"$logs/batch.$batch.log" 2>&1
  p=$(grep -c '^--- PASS' "$logs/batch.$batch.log") f=$(grep -c '^--- FAIL' "$logs/batch.$batch.log")
  pass=$((pass + p)) fail=$((fail + f))
  echo "under-load: batch $batch: $p passed, $f failed ($(date +%T))"
  kill -0 "$suite" 2>/dev/null || break
done
wait "$suite"; rc=$?
echo "under-load: $test under -cpu $cpu alongside make test (exit $rc): $pass passed, $fail failed in $batch batch(es); logs in $logs"
[ "$rc" -eq 0 ] && [ "$fail" -eq 0 ]
