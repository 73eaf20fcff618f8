#!/usr/bin/env bash
# Sanitizer builds and runs:
#   asan  ASan+UBSan (-DORCHARD_SANITIZE=ON) in ./build-asan: the unit and
#         integration tests.
#   tsan  TSan (-DORCHARD_TSAN=ON) in ./build-tsan: the concurrency tests
#         (the store's threaded tests, the worker, the integration tests).
# Usage: deploy/sanitize.sh [asan|tsan|all]   (default all)
# Exit 0 only when every test passes with no sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
WHAT="${1:-all}"
JOBS="${SANITIZE_JOBS:-2}"

build() {  # build <dir> <cmake flags...>: everything, so ctest finds every test
  local dir="$1"
  shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  ninja -C "$dir" -j"$JOBS"
}

status=0
if [ "$WHAT" = asan ] || [ "$WHAT" = all ]; then
  build build-asan -DORCHARD_SANITIZE=ON
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
  (cd build-asan && ctest --output-on-failure --timeout 600 -j"$JOBS" -L 'unit|integration') \
    || status=1
fi
if [ "$WHAT" = tsan ] || [ "$WHAT" = all ]; then
  build build-tsan -DORCHARD_TSAN=ON
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
  # The concurrency tests: the store's threaded tests, the worker's, and
  # the real processes (the server's and workers' threads under load).
  (cd build-tsan && ctest --output-on-failure --timeout 600 -j"$JOBS" \
     -R "${TSAN_TESTS:-SqliteStore|Worker|Integration|Restart|Failure|Cancel|Lifecycle}") \
    || status=1
fi
exit $status
