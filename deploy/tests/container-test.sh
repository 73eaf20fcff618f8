#!/usr/bin/env bash
# The container image, built and run without a registry or a container
# runtime (podman run needs cgroups these machines lack):
#   container-test.sh BUILD_DIR
# 1. builds the package from BUILD_DIR (deploy/package.sh --no-build) and the
#    image's runtime stage on it with `podman build --isolation chroot`, on
#    the base deploy/container/make-base.sh imports from debootstrap
#    (ORCHARD_CONTAINER_FULL=1 builds stage 1 from source too: long);
# 2. checks the image: user 10001, a HEALTHCHECK, no compiler inside;
# 3. mounts it (`podman image mount`) and, in private mount and network
#    namespaces, runs its orchard-server as uid 10001 from a chroot, an
#    orchard-worker that registers, and the image's own HEALTHCHECK command.
# Skipped (exit 77, with the reason) when not root, without podman or
# debootstrap, or when the base image is missing and ORCHARD_CONTAINER_TEST
# is not 1 (making it takes minutes; CI does not by default).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="$(cd "$1" && pwd)"
base=localhost/debian:12
skip() { echo "container-test: SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (podman image mount, chroot)"
command -v podman >/dev/null || skip "podman missing (apt-get install podman)"
command -v debootstrap >/dev/null || skip "debootstrap missing (apt-get install debootstrap)"
if ! podman image exists "$base"; then
  [ "${ORCHARD_CONTAINER_TEST:-0}" = 1 ] ||
    skip "no base image $base: run deploy/container/make-base.sh (minutes) or set ORCHARD_CONTAINER_TEST=1"
  bash "$src/deploy/container/make-base.sh" "$base"
fi

tag="$$"
tmp="$(mktemp -d /tmp/orchard-container-test.XXXXXX)"
image="localhost/orchard:test-$tag"
mnt=""
cleanup() {
  if [ -n "$mnt" ]; then podman image unmount "$image" >/dev/null 2>&1 || true; fi
  podman rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

t0=$(date +%s)
if [ "${ORCHARD_CONTAINER_FULL:-0}" = 1 ]; then
  args=()
else
  # The package replaces stage 1 ("build"), whose /out it would have made.
  BUILD_DIR="$build" bash "$src/deploy/package.sh" --no-build "$tmp/ctx/out" >/dev/null
  args=(--build-context "build=$tmp/ctx")
fi
podman build --isolation chroot --format docker -f "$src/deploy/container/Containerfile" \
  --build-arg "BASE=$base" --build-arg "RUNTIME=$base" "${args[@]}" -t "$image" "$src" \
  >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; echo "container-test: FAIL: podman build"; exit 1; }
echo "container-test: built $image in $(( $(date +%s) - t0 ))s ($(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"

fail=0
bad() { echo "container-test: FAIL: $*"; fail=1; }
[ "$(podman image inspect --format '{{.Config.User}}' "$image")" = "10001:10001" ] || bad "image user is not 10001:10001"
health="$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$image")"
echo "$health" | grep -q '/healthz' || bad "no HEALTHCHECK on /healthz: $health"

mnt="$(podman image mount "$image")"
for tool in g++ cc cmake ninja; do
  if [ -e "$mnt/usr/bin/$tool" ]; then bad "build tool /usr/bin/$tool in the runtime image"; fi
done
getent_uid="$(chroot "$mnt" getent passwd orchard | cut -d: -f3)"
[ "$getent_uid" = 10001 ] || bad "user orchard has uid '$getent_uid', not 10001"

# The image's binaries, run from the image: a server (as the image's user)
# whose /healthz the image's HEALTHCHECK command must find healthy, and a
# worker that registers with it.
podman image inspect --format '{{index .Config.Healthcheck.Test 3}}' "$image" >"$tmp/hc.sh"
cat >"$tmp/run.sh" <<RUN
set -eu
ip link set lo up
mount -t tmpfs -o mode=1777 tmpfs "$mnt/tmp"
mount -t tmpfs -o uid=10001,gid=10001 tmpfs "$mnt/var/lib/orchard"
cp "$tmp/hc.sh" "$mnt/tmp/hc.sh"
chroot --userspec=10001:10001 "$mnt" /usr/bin/orchard-server --listen 127.0.0.1:7070 \
  --http 127.0.0.1:8080 --db /var/lib/orchard/orchard.db >"$tmp/server.log" 2>&1 &
srv=\$!
chroot --userspec=10001:10001 "$mnt" /usr/bin/orchard-worker --server 127.0.0.1:7070 \
  --name in-image >"$tmp/worker.log" 2>&1 &
wrk=\$!
ok=0
for i in \$(seq 1 200); do
  if grep -q "registered as" "$tmp/worker.log" &&
     chroot --userspec=10001:10001 "$mnt" /bin/bash /tmp/hc.sh; then ok=1; break; fi
  sleep 0.1
done
kill -TERM \$wrk \$srv
wait \$wrk \$srv || true
[ \$ok = 1 ]
RUN
if unshare --mount --net bash "$tmp/run.sh"; then
  echo "container-test: ok: the image's server is healthy by its HEALTHCHECK, its worker registered"
else
  tail -n 5 "$tmp/server.log" "$tmp/worker.log"; bad "the image's binaries did not serve"
fi
for b in orchard-server orchard-worker orchardctl orchard-check; do
  chroot "$mnt" "/usr/bin/$b" --help >/dev/null 2>&1 || bad "$b --help fails in the image"
done
[ $fail = 0 ] && echo "container-test: all checks passed in $(( $(date +%s) - t0 ))s"
exit $fail
