#!/usr/bin/env bash
# Installs what is missing and builds Orchard into ./build (ccache, ninja, -j2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
echo "build: compiling (2 jobs; the first build takes a few minutes)"
ninja -C "$BUILD_DIR" -j"${JOBS:-2}"
