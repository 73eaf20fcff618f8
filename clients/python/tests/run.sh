#!/usr/bin/env bash
# The Python client's test steps, as ctest runs them (label `python`):
#   run.sh venv BUILD_DIR          make BUILD_DIR/clients/python/venv with Debian's
#                                  python3 (--system-site-packages: grpcio, protobuf,
#                                  pytest, pandas) and install the package into it
#                                  offline, as a user would
#   run.sh pytest BUILD_DIR ARGS   run pytest ARGS with that venv's python
#   run.sh stubs BUILD_DIR         fail when orchard/v1 differs from stubs generated
#                                  from proto/ now (run gen_stubs.sh to refresh them)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
step="$1"
build="$(cd "$2" && pwd)"
shift 2
venv="$build/clients/python/venv"
case "$step" in
  venv)
    rm -rf "$venv" "$build/clients/python/src"
    mkdir -p "$build/clients/python/src"
    # A copy, so pip's build files stay out of the source tree.
    cp -r "$here/pyproject.toml" "$here/README.md" "$here/orchard" "$build/clients/python/src/"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q --no-index --no-deps --no-build-isolation \
      "$build/clients/python/src"
    "$venv/bin/python" -c 'import orchard, orchard.aio, orchard.slice; print("installed", orchard.__file__)'
    ;;
  pytest)
    cd "$build/clients/python"
    ORCHARD_BUILD_DIR="$build" exec "$venv/bin/python" -m pytest -p no:cacheprovider \
      -o python_files='test_*.py' "$@"
    ;;
  stubs)
    # What the build generated (target python_stubs), made again here so the
    # test does not depend on the build having run first.
    out="$build/clients/python/gen"
    bash "$here/gen_stubs.sh" "$out"
    fail=0
    for f in orchard_pb2.py orchard_pb2_grpc.py error_details_pb2.py; do
      if ! cmp -s "$out/orchard/v1/$f" "$here/orchard/v1/$f"; then
        echo "stale: clients/python/orchard/v1/$f differs from what proto/ generates now;" \
             "run clients/python/gen_stubs.sh" >&2
        fail=1
      fi
    done
    [ $fail -eq 0 ] && echo "stubs match proto/"
    exit $fail
    ;;
  *)
    echo "run.sh: unknown step '$step' (venv, pytest, stubs)" >&2
    exit 2
    ;;
esac
