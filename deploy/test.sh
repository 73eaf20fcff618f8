#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# (unit, integration, faults) with ctest. Exit code 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh
BUILD_DIR="${BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 300 -j2 ${CTEST_ARGS:-}
