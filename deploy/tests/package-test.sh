#!/usr/bin/env bash
# The Debian package as an operator gets it:
#   package-test.sh BUILD_DIR VERSION
# builds it with `deploy/package.sh --no-build` from BUILD_DIR, then checks
#  - the file is orchard_VERSION_amd64.deb;
#  - Depends names the Debian package of every shared library the binaries
#    load (so apt-get install pulls them in on a clean Debian 12) and adduser;
#  - the postinst creates the orchard user; /etc/orchard and /etc/default files
#    are conffiles;
#  - unpacked into a fresh directory (dpkg -x), each binary runs from there
#    (--version, or --help while a binary has no --version), the man pages
#    are there, and the units pass deploy/tests/check-units.sh on that root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "$1" && pwd)"
version="$2"
tmp="$(mktemp -d /tmp/orchard-package-test.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "package-test: FAIL: $*"; fail=1; }

t0=$(date +%s)
BUILD_DIR="$build" bash "$here/../package.sh" --no-build "$tmp/out"
deb="$tmp/out/orchard_${version}_amd64.deb"
[ -f "$deb" ] || { ls -l "$tmp/out"; echo "package-test: FAIL: $deb not written"; exit 1; }
echo "package-test: built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $(( $(date +%s) - t0 ))s"

depends="$(dpkg-deb -f "$deb" Depends)"
echo "package-test: Depends: $depends"
dpkg-deb -x "$deb" "$tmp/root"
# The names Depends lists (versions and alternatives' tails dropped).
dep_names="$(echo "$depends" | tr ',|' '\n\n' | sed 's/([^)]*)//; s/[[:space:]]//g; s/:any$//')"
has_dep() { grep -qxF "$1" <<<"$dep_names"; }
has_dep adduser || bad "Depends lacks adduser (the postinst needs it)"
# Every library a binary needs must come from a declared package.
for b in orchard-server orchard-worker orchardctl orchard-check; do
  for lib in $(objdump -p "$tmp/root/usr/bin/$b" | awk '/NEEDED/ {print $2}'); do
    path="$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}' || true)"
    [ -n "$path" ] || { bad "$b: $lib not found on this host"; continue; }
    # Merged /usr: dpkg knows a library by the path its package ships.
    pkg="$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1 || true)"
    [ -n "$pkg" ] || pkg="$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1 || true)"
    [ -n "$pkg" ] || { bad "$b: no Debian package owns $path"; continue; }
    # The package, or a virtual package it provides (libspdlog1.10-fmt9).
    provides="$(dpkg-query -W -f='${Provides}' "$pkg" 2>/dev/null | tr ',' '\n' | sed 's/([^)]*)//; s/[[:space:]]//g')"
    ok=0
    for name in "$pkg" $provides; do if has_dep "$name"; then ok=1; fi; done
    [ $ok = 1 ] || bad "$b needs $lib from $pkg, which Depends does not name"
  done
done

dpkg-deb -e "$deb" "$tmp/control"
[ -x "$tmp/control/postinst" ] && grep -q 'adduser --system' "$tmp/control/postinst" ||
  bad "no executable postinst that creates the orchard system user"
for f in /etc/default/orchard-server /etc/default/orchard-worker /etc/orchard/server.json \
         /etc/orchard/worker.json; do
  grep -qx "$f" "$tmp/control/conffiles" 2>/dev/null || bad "$f is not a conffile"
  [ -f "$tmp/root$f" ] || bad "$f not in the package"
done

for b in orchard-server orchard-worker orchardctl orchard-check; do
  exe="$tmp/root/usr/bin/$b"
  [ -x "$exe" ] || { bad "/usr/bin/$b missing"; continue; }
  if out="$("$exe" --version 2>&1)" && echo "$out" | grep -q "$version"; then
    echo "package-test: ok: /usr/bin/$b --version: $out"
  elif out="$("$exe" --help 2>&1)" && echo "$out" | grep -q "$b"; then
    echo "package-test: ok: /usr/bin/$b --help runs (no --version in this binary yet)"
  else
    echo "$out" | head -5; bad "/usr/bin/$b does not run from the unpacked package"
  fi
  page="$tmp/root/usr/share/man/man1/$b.1.gz"
  zcat "$page" 2>/dev/null | grep -q '^\.TH' || bad "no man page $page"
done

bash "$here/check-units.sh" "$tmp/root" || bad "the packaged units"
[ $fail = 0 ] && echo "package-test: all checks passed"
exit $fail
