#!/usr/bin/env bash
# `apt-get install ./orchard_*.deb` on a clean Debian 12, for real:
#   package-install-test.sh BUILD_DIR
# In a fresh root made from the debootstrap base image (deploy/container/
# make-base.sh, a writable podman container root, never this host's), it
# installs the package just built with apt-get, which must pull in every
# runtime library from the mirror, and checks that
#  - the postinst made the system user orchard (no login shell, home
#    /var/lib/orchard);
#  - each binary runs there, on the libraries its Depends brought;
#  - orchard-server starts as orchard with the installed
#    /etc/orchard/server.json (in a private network namespace) and an
#    orchard-worker with /etc/orchard/worker.json registers with it;
#  - apt-get purge removes the binaries, units and conffiles, and keeps the
#    user and /var/lib/orchard (the operator's data).
# Skipped (77, with the reason) when not root, without podman, or without the
# base image (ORCHARD_CONTAINER_TEST=1 makes it first: minutes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="$(cd "$1" && pwd)"
base=localhost/debian:12
skip() { echo "package-install-test: SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (chroot, podman mount)"
command -v podman >/dev/null || skip "podman missing (apt-get install podman)"
if ! podman image exists "$base"; then
  [ "${ORCHARD_CONTAINER_TEST:-0}" = 1 ] ||
    skip "no base image $base: run deploy/container/make-base.sh (minutes) or set ORCHARD_CONTAINER_TEST=1"
  bash "$src/deploy/container/make-base.sh" "$base"
fi

t0=$(date +%s)
tmp="$(mktemp -d /tmp/orchard-install-test.XXXXXX)"
ctr="orchard-install-test-$$"
cleanup() {
  podman umount "$ctr" >/dev/null 2>&1 || true
  podman rm -f "$ctr" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
bad() { echo "package-install-test: FAIL: $*"; fail=1; }

BUILD_DIR="$build" bash "$src/deploy/package.sh" --no-build "$tmp/out" >/dev/null
deb="$(ls "$tmp"/out/orchard_*_amd64.deb)"
podman create --name "$ctr" "$base" /bin/true >/dev/null
root="$(podman mount "$ctr")"
rm -f "$root/etc/resolv.conf"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
# In the root: a private mount namespace with /proc; `net` adds a private
# network namespace (the daemons' loopback ports are their own).
in_root() {  # in_root [net] SCRIPT
  local flags=(--mount)
  if [ "$1" = net ]; then flags+=(--net); shift; fi
  unshare "${flags[@]}" bash -c "mount -t proc proc '$root/proc'; ip link set lo up 2>/dev/null; $1"
}

# The mirror of this host's apt sources (the base's own sources.list).
if ! in_root "chroot '$root' apt-get update -q &&
              DEBIAN_FRONTEND=noninteractive chroot '$root' apt-get install -y -q \
                --no-install-recommends /tmp/$(basename "$deb")" >"$tmp/apt.log" 2>&1; then
  tail -20 "$tmp/apt.log"; echo "package-install-test: FAIL: apt-get install ./$(basename "$deb")"; exit 1
fi
echo "package-install-test: apt-get install ./$(basename "$deb"): $(grep -c '^Setting up' "$tmp/apt.log") packages set up"

user="$(chroot "$root" getent passwd orchard || true)"
IFS=: read -r _ _ uid _ _ home shell <<<"$user"
if [ -z "$user" ] || [ "$uid" -ge 1000 ] || [ "$home" != /var/lib/orchard ] ||
   [ "$shell" = /bin/bash ] || [ "$shell" = /bin/sh ]; then
  bad "the postinst did not make a system user orchard: '$user'"
fi
for b in orchard-server orchard-worker orchardctl orchard-check; do
  chroot "$root" "/usr/bin/$b" --help >/dev/null 2>&1 || bad "$b does not run on a clean Debian 12 with its Depends"
done

# The installed config files start a server and a worker, as user orchard.
cat >"$tmp/daemons.sh" <<RUN
set -u
install -d -o orchard -g orchard /var/lib/orchard
runuser -u orchard -- /usr/bin/orchard-server --config /etc/orchard/server.json >/tmp/server.log 2>&1 &
srv=\$!
runuser -u orchard -- /usr/bin/orchard-worker --config /etc/orchard/worker.json --name chroot >/tmp/worker.log 2>&1 &
wrk=\$!
ok=1
for i in \$(seq 1 200); do
  if grep -q 'registered as' /tmp/worker.log && [ -f /var/lib/orchard/orchard.db ]; then ok=0; break; fi
  sleep 0.1
done
kill -TERM \$wrk \$srv; wait \$wrk \$srv
exit \$ok
RUN
cp "$tmp/daemons.sh" "$root/tmp/daemons.sh"
if in_root net "chroot '$root' bash /tmp/daemons.sh"; then
  echo "package-install-test: ok: /etc/orchard/server.json and worker.json start a server and a worker as orchard"
else
  tail -n 5 "$root/tmp/server.log" "$root/tmp/worker.log"; bad "the installed daemons did not start and register"
fi

if ! in_root "DEBIAN_FRONTEND=noninteractive chroot '$root' apt-get purge -y -q orchard" >"$tmp/purge.log" 2>&1; then
  tail -10 "$tmp/purge.log"; bad "apt-get purge orchard"
fi
for f in /usr/bin/orchard-server /usr/lib/systemd/system/orchard-worker.service /etc/orchard/server.json \
         /etc/default/orchard-worker; do
  [ ! -e "$root$f" ] || bad "$f left after purge"
done
chroot "$root" getent passwd orchard >/dev/null || bad "purge removed the orchard user"
[ -f "$root/var/lib/orchard/orchard.db" ] || bad "purge removed /var/lib/orchard"
[ $fail = 0 ] && echo "package-install-test: all checks passed in $(( $(date +%s) - t0 ))s"
exit $fail
