#!/usr/bin/env bash
# Installs the Debian 12 packages Orchard needs to build and test. Idempotent:
# a package already present is not fetched again, and nothing is removed
# except Boost 1.74's dev headers, which conflict with the 1.81 ones we need.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost1.81-dev libsqlite3-dev sqlite3 nlohmann-json3-dev
  libgtest-dev libgmock-dev libcli11-dev libspdlog-dev libfmt-dev libjemalloc-dev
  procps psmisc
  # The operators' view's tests: promtool checks /metrics (prometheus, big but
  # the only packaged promtool); the dashboard runs in headless Chromium driven
  # by playwright-core from npm (tests/browser installs it on first run).
  prometheus chromium nodejs
  clang-14 libclang-rt-14-dev
  # Install and deploy (deploy/CMakeLists.txt, deploy/tests, tests/cluster):
  # the Debian package (dpkg-shlibdeps, man pages from --help), the units'
  # check (systemd-analyze), the manifests' check (PyYAML), the compose file's
  # (docker-compose config, offline), the units' syscall filters (strace), the
  # cluster test in network namespaces (ip).
  dpkg-dev help2man systemd python3-yaml docker-compose strace iproute2
  # The Python client (clients/python) and its tests: the runtime is grpcio +
  # protobuf only; pytest, venv and pip for the tests, pandas for
  # result_frame() and examples/python.
  python3 python3-grpcio python3-protobuf python3-pytest python3-venv python3-pip
  python3-setuptools
  python3-pandas
)
# kubectl renders the Kubernetes manifests (kubectl kustomize). Debian's is
# kubernetes-client; a kubectl from elsewhere (e.g. Google's kubectl package)
# conflicts with it, so it is only asked for when none is installed.
if ! command -v kubectl >/dev/null 2>&1; then PKGS+=(kubernetes-client); fi
# Debian's nodejs ships npm separately; NodeSource's nodejs bundles it (and
# conflicts with Debian's npm package), so npm is only asked for when missing.
if ! command -v npm >/dev/null 2>&1; then PKGS+=(npm); fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
