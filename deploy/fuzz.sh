#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan into
# ./build-fuzz and runs each for a bounded time. Exit 0 only when no target
# found a crash, a leak or undefined behaviour.
#   FUZZ_SECONDS   seconds per target (default 20)
#   FUZZ_JOBS      build jobs (default 2)
# Crashing inputs are kept in build-fuzz/artifacts/; the corpora grow in
# build-fuzz/corpus/<target>/ across runs, starting from the seeds in
# tests/fuzz/corpus/<target>/ (read only; a clean clone starts from them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
BUILD_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
CXX_BIN="$(command -v clang++-14 || command -v clang++)"
CC_BIN="$(command -v clang-14 || command -v clang)"
TARGETS=(fuzz_validate_spec fuzz_params_json fuzz_split)

t0=$(date +%s)
# -O1 -g1, as the sanitizer builds: half the compile time of -O2 -g, and line
# tables are all a report's stack trace needs.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_C_COMPILER="$CC_BIN" \
  -DORCHARD_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
ninja -C "$BUILD_DIR" -j"${FUZZ_JOBS:-2}" "${TARGETS[@]}"
echo "fuzz: build took $(( $(date +%s) - t0 ))s"
t0=$(date +%s)

mkdir -p "$BUILD_DIR/artifacts"
status=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/corpus/$t"
  mkdir -p "$corpus"
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s"
  if ! "$BUILD_DIR/tests/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$BUILD_DIR/artifacts/$t-" "$corpus" "tests/fuzz/corpus/$t" \
      2>"$BUILD_DIR/$t.log"; then
    echo "fuzz: $t FAILED; see $BUILD_DIR/$t.log and $BUILD_DIR/artifacts/"
    tail -40 "$BUILD_DIR/$t.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$BUILD_DIR/$t.log" | \
      sed "s/^/fuzz: $t: /"
  fi
done
echo "fuzz: runs took $(( $(date +%s) - t0 ))s"
exit $status
