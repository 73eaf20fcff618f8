#!/usr/bin/env python3
"""The reduce program of rx_slice.py: reads the slices' results (a JSON array,
in index order) on stdin and prints the task's result: the totals, the files,
and per (region, year) the rows and the exact amount, summed over slices
(`columns` and `rows`)."""
import json
import sys


def main() -> None:
    slices = json.load(sys.stdin)
    groups = {}
    for sl in slices:
        for region, year, rows, amount in sl["groups"]:
            g = groups.setdefault((region, year), [0, 0])
            g[0] += rows
            g[1] += amount
    print(json.dumps({
        "row_count": sum(sl["rows"] for sl in slices),
        "slices": len(slices),
        "files": [sl["file"] for sl in slices],
        "file_bytes": sum(sl["file_bytes"] for sl in slices),
        "memory_bytes_before": sum(sl["memory_bytes_before"] for sl in slices),
        "memory_bytes_after": sum(sl["memory_bytes_after"] for sl in slices),
        "amount": sum(g[1] for g in groups.values()),
        "columns": ["region", "year", "rows", "amount"],
        # As csv.aggregate's result, so Task.result_frame() makes it a DataFrame.
        "rows": [[r, y, g[0], g[1]] for (r, y), g in sorted(groups.items())],
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
