#!/usr/bin/env bash
# deploy/container/make-base.sh [IMAGE]: makes the Debian 12 base image the
# Containerfile builds on where no registry is reachable: a debootstrap root
# (minbase), imported into podman as IMAGE (default localhost/debian:12).
# Does nothing when IMAGE exists. Takes a few minutes (downloads ~40 MB of
# packages from the apt mirror).
set -euo pipefail
image="${1:-localhost/debian:12}"
if podman image exists "$image"; then echo "make-base: $image exists"; exit 0; fi
mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d /var/tmp/orchard-debootstrap.XXXXXX)"
trap 'rm -rf "$root"' EXIT
t0=$(date +%s)
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log"; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# The image's apt must find the same mirror; no caches in the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --quiet - "$image" >/dev/null
echo "make-base: $image imported from a debootstrap root in $(( $(date +%s) - t0 ))s"
