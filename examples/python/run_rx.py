#!/usr/bin/env python3
"""Submits the prescriptions workflow as one Orchard task and prints its
result: chunk -> downcast -> store per slice (rx_slice.py on the workers),
then merge (rx_merge.py, the reduce program).

    run_rx.py CSV OUT_DIR [--slices 8] [--server 127.0.0.1:7070]

The workers run with examples/python/worker.json (paths adjusted), and
OUT_DIR must be a directory they can all write (a shared mount).
"""
import argparse
import json
import sys

import orchard


def count_rows(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1  # minus the header


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("out_dir")
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--server", default=None)
    a = ap.parse_args()
    client = orchard.Client(a.server) if a.server else orchard.Client.from_env()
    rows = count_rows(a.csv)
    h = client.submit("exec", range=(0, rows), subtasks=a.slices,
                      params={"program": "rx-slice", "args": [a.csv, a.out_dir]})
    print(f"task {h.id}: {rows} rows in {a.slices} slices", file=sys.stderr)
    for t in h.watch():
        print(f"  {t.state.name:<11} {t.subtasks.succeeded}/{t.subtasks.total} slices",
              file=sys.stderr)
    try:
        task = h.wait()
    except orchard.TaskFailed as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(task.result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
