#!/usr/bin/env bash
# Checks Orchard's systemd units the way systemd would load them on a host.
#   check-units.sh ROOT              units in ROOT/usr/lib/systemd/system (or ROOT/lib/...),
#                                    binaries in ROOT/usr/bin (an unpacked package,
#                                    deploy/tests/package-test.sh)
#   check-units.sh --build BUILDDIR  the units in deploy/systemd with the binaries of BUILDDIR,
#                                    laid out in a temporary root
# Then, as root, run-units.py starts the daemons with the units' command
# lines and default files. For each unit: `systemd-analyze verify --root=` must pass with no warning
# (systemd only warns, exit 0, on an unknown key or a bad value), and
# `systemd-analyze security --offline` must stay under the exposure we
# reached (so that hardening removed by mistake fails the test). The root
# also gets the host's targets (sysinit.target, ...), which a real Debian
# host has from its systemd package.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

if [ "${1:-}" = "--build" ]; then
  build="$(cd "$2" && pwd)"
  tmp="$(mktemp -d /tmp/orchard-units.XXXXXX)"
  root="$tmp/root"
  mkdir -p "$root/usr/bin" "$root/usr/lib/systemd/system"
  cp "$src"/deploy/systemd/*.service "$root/usr/lib/systemd/system/"
  mkdir -p "$root/etc"
  cp -r "$src"/deploy/etc/default "$src"/deploy/etc/orchard "$root/etc/"
  for b in server/orchard-server worker/orchard-worker; do cp "$build/$b" "$root/usr/bin/"; done
else
  root="$(cd "$1" && pwd)"
fi

unitdir="$root/usr/lib/systemd/system"
[ -f "$unitdir/orchard-server.service" ] || unitdir="$root/lib/systemd/system"
command -v systemd-analyze >/dev/null || { echo "check-units: systemd-analyze missing (apt-get install systemd)"; exit 1; }
# The targets our units order against; the root of an unpacked package has none.
mkdir -p "$root/usr/lib/systemd/system"
for t in /usr/lib/systemd/system/*.target; do
  [ -e "$root/usr/lib/systemd/system/$(basename "$t")" ] || cp "$t" "$root/usr/lib/systemd/system/"
done

fail=0
# unit  max exposure (systemd-analyze security, 0-100; measured 12 and 17)
for spec in "orchard-server.service 15" "orchard-worker.service 20" "orchard-worker@a.service 20"; do
  set -- $spec
  unit=$1 max=$2
  file="$unitdir/${unit/@a/@}"
  if [ ! -f "$file" ]; then echo "check-units: FAIL: $file missing"; fail=1; continue; fi
  # --man=no: `man` would look on the host, not in ROOT; the package test
  # checks the man pages are in the package.
  out="$(systemd-analyze verify --man=no --root="$root" "$unit" 2>&1)" || { echo "$out"; echo "check-units: FAIL: verify $unit exited non-zero"; fail=1; continue; }
  if [ -n "$out" ]; then echo "$out"; echo "check-units: FAIL: verify $unit warned"; fail=1; continue; fi
  sec="$(systemd-analyze security --offline=yes --root="$root" --threshold="$max" "$unit" 2>&1)" || {
    echo "$sec" | tail -15; echo "check-units: FAIL: $unit exposure above $max/100"; fail=1; continue; }
  echo "check-units: ok: $unit ($(echo "$sec" | grep -o 'exposure level for.*' ))"
done

# The worker drains on SIGTERM for up to DaemonOptions::drain_timeout_ms
# (worker/daemon.h): systemd must wait longer than that before SIGKILL.
drain_ms="$(sed -n "s/.*drain_timeout_ms = \([0-9']*\);.*/\1/p" "$src/worker/daemon.h" | tr -d "'")"
drain_s=$(( ${drain_ms:-30000} / 1000 ))
for unit in orchard-worker.service orchard-worker@.service; do
  t="$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unitdir/$unit")"
  if [ -z "$t" ] || [ "$t" -le "$drain_s" ]; then
    echo "check-units: FAIL: $unit TimeoutStopSec='$t' does not cover the $drain_s s drain"; fail=1
  fi
  grep -q '^KillMode=mixed$' "$unitdir/$unit" || {
    echo "check-units: FAIL: $unit must signal only the worker (KillMode=mixed) so it can drain"; fail=1; }
done

# The units' command lines, run as systemd would build them (run-units.py),
# in private network and mount namespaces: needs root.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  unshare --net --mount /usr/bin/python3 "$here/run-units.py" "$root" || { echo "check-units: FAIL: running the units' commands"; fail=1; }
else
  echo "check-units: not root: the units' command lines were not run (run-units.py)"
fi
exit $fail
