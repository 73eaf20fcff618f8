#!/usr/bin/python3
"""The layer check: every #include "..." of our code points down or sideways.

Layers, lowest first (a file belongs to the longest folder prefix listed):
  common/              no gRPC, no proto: lifecycle tables, splitting, clock
  proto/               generated code, rpc_status.h, the JSON shapes (json/)
  worker/handlers/     the handlers and their interface (worker/handler.h)
  server/store/        the Store interface, SQLite, the invariant checker
  server/              the gRPC services, hub, sweeper, janitor, validation
  server/ops/          metrics, interceptor, commit reporter
  server/http/         the HTTP listener, JSON API, dashboard
  server/tools/, server/main.cc   commands that wire the layers
  worker/              the worker daemon
  cli/                 orchardctl
  bench/, tests/       may include anything

Usage: layers.py [ROOT]. Prints each include that breaks the rule and exits 1;
exits 0 and prints a count when none does.
"""
import os
import re
import sys

# layer -> the layers it may include (itself always).
ALLOWED = {
    "common": set(),
    "proto": {"common"},
    "handlers": {"common"},
    "store": {"common", "proto"},
    "server": {"common", "proto", "store"},
    "ops": {"common", "proto", "store"},
    "http": {"common", "proto", "store", "server", "ops"},
    "server-top": {"common", "proto", "store", "server", "ops", "http"},
    "worker": {"common", "proto", "handlers"},
    "cli": {"common", "proto"},
    "bench": {"common", "proto", "handlers", "store", "server", "ops", "http", "worker", "cli"},
    "tests": None,  # anything
}

# Longest prefix first.
PREFIXES = [
    ("worker/handler.h", "handlers"),
    ("worker/handlers/", "handlers"),
    ("server/store/", "store"),
    ("server/ops/", "ops"),
    ("server/http/", "http"),
    ("server/tools/", "server-top"),
    ("server/main.cc", "server-top"),
    ("server/", "server"),
    ("worker/", "worker"),
    ("common/", "common"),
    ("proto/", "proto"),
    ("cli/", "cli"),
    ("bench/", "bench"),
    ("tests/", "tests"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    for prefix, layer in PREFIXES:
        if path == prefix or path.startswith(prefix):
            return layer
    return None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    bad, checked = [], 0
    for top in ("common", "proto", "server", "worker", "cli", "bench"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = [d for d in dirnames if d not in ("node_modules", "assets")]
            for name in filenames:
                if not name.endswith((".h", ".cc", ".in")):
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                src = layer_of(rel)
                allowed = ALLOWED.get(src)
                if allowed is None:
                    continue
                with open(full, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        dst = layer_of(target)
                        if dst is None:  # generated ("orchard/v1/...") or external
                            if target.startswith("orchard/v1/") and src in ("common",):
                                bad.append(f"{rel}:{lineno}: {src} includes generated proto {target}")
                            continue
                        checked += 1
                        if dst != src and dst not in allowed:
                            bad.append(f"{rel}:{lineno}: layer '{src}' includes '{target}' "
                                       f"of layer '{dst}', which is above it or beside it")
    for b in bad:
        print(b)
    if bad:
        print(f"layers: {len(bad)} include(s) break the one-way rule (tests/layers.py)")
        return 1
    print(f"layers: {checked} includes checked, all point down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
