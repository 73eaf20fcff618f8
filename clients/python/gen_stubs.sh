#!/usr/bin/env bash
# Generates the Python stubs from proto/ with Debian's protoc and
# grpc_python_plugin into OUT (default: this package, orchard/v1/). The build
# runs it into build/clients/python/gen, and a test (StubsAreFresh) fails when
# the package's copy differs: run this script after changing proto/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto="$(cd "$here/../../proto" && pwd)"
out="${1:-$here}"
mkdir -p "$out/orchard/v1"
protoc --proto_path="$proto" --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  "$proto/orchard/v1/orchard.proto"
protoc --proto_path="$proto" --python_out="$out" "$proto/orchard/v1/error_details.proto"
