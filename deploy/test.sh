#!/usr/bin/env bash
# The whole test suite (what .ci/run runs). Installs what is missing, then, in
# phases, each with a header and its elapsed time:
#   1. build ./build and run every test with ctest (unit, integration, faults,
#      the browser test, the benchmark's smoke test);
#   2. ASan+UBSan: the unit and integration tests    (deploy/sanitize.sh asan)
#   3. TSan: the concurrency tests                    (deploy/sanitize.sh tsan)
#   4. libFuzzer targets, FUZZ_SECONDS (25) each      (deploy/fuzz.sh)
# ORCHARD_TEST_QUICK=1 runs phase 1 only (a quick local run). Every phase runs
# even when an earlier one failed (except when the main build fails); the
# exit code is 0 only when all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
T_START=$(date +%s)
FAILED=()

phase() {  # phase <name> <command...>: runs it with a header and its time
  local name="$1" t0 rc
  shift
  echo
  echo "==== test.sh: $name ($(date -u +%H:%M:%S))"
  t0=$(date +%s)
  "$@"
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    echo "==== test.sh: $name passed in $((dt / 60))m$((dt % 60))s"
  else
    echo "==== test.sh: $name FAILED (exit $rc) after $((dt / 60))m$((dt % 60))s"
    FAILED+=("$name")
  fi
  return $rc
}

main_suite() {
  local t0
  t0=$(date +%s)
  bash deploy/build.sh || return 2
  echo "test.sh: build took $(( $(date +%s) - t0 ))s"
  # shellcheck disable=SC2086  # CTEST_ARGS splits on spaces
  (cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 300 -j2 ${CTEST_ARGS:-})
}

phase "main suite (build, ctest)" main_suite
main_rc=$?
if [ $main_rc -eq 2 ]; then
  echo "test.sh: the build failed; not running the sanitizer and fuzz phases"
  exit 1
fi

if [ "${ORCHARD_TEST_QUICK:-0}" = 1 ]; then
  echo "test.sh: ORCHARD_TEST_QUICK=1: skipping the sanitizer and fuzz phases"
else
  phase "ASan+UBSan: unit and integration tests" bash deploy/sanitize.sh asan
  phase "TSan: concurrency tests" bash deploy/sanitize.sh tsan
  export FUZZ_SECONDS="${FUZZ_SECONDS:-25}"
  phase "libFuzzer targets (${FUZZ_SECONDS}s each)" bash deploy/fuzz.sh
fi

total=$(( $(date +%s) - T_START ))
echo
if [ ${#FAILED[@]} -eq 0 ]; then
  echo "==== test.sh: all phases passed in $((total / 60))m$((total % 60))s"
  exit 0
fi
echo "==== test.sh: FAILED: ${FAILED[*]} (total $((total / 60))m$((total % 60))s)"
exit 1
