#!/usr/bin/env bash
# deploy/package.sh [--no-build] OUTDIR: builds ./build (deploy/build.sh;
# --no-build uses it as it is) and writes the Debian package
# orchard_<version>_amd64.deb into OUTDIR with CPack (deploy/CMakeLists.txt):
# the binaries, their systemd units and man pages, /etc/default files, and a
# postinst that creates the orchard system user. Runtime dependencies come
# from dpkg-shlibdeps.
#   sudo apt-get install ./OUTDIR/orchard_*.deb
set -euo pipefail
build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
if [ $# -ne 1 ]; then echo "usage: deploy/package.sh [--no-build] OUTDIR" >&2; exit 2; fi
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
if [ $build = 1 ]; then bash deploy/build.sh; fi
stage="$(mktemp -d /tmp/orchard-cpack.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
cpack --config "$BUILD_DIR/CPackConfig.cmake" -B "$stage" >"$stage.log" 2>&1 || {
  cat "$stage.log"; rm -f "$stage.log"; exit 1; }
rm -f "$stage.log"
for deb in "$stage"/*.deb; do
  mv "$deb" "$out/"
  echo "package: $out/$(basename "$deb")"
done
