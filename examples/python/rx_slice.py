#!/usr/bin/env python3
"""One slice of the prescriptions CSV, run by a worker's `exec` handler.

    rx_slice.py CSV OUT_DIR        (the task's params.args; the range is in rows)

Reads the data rows [begin, end) of CSV with pandas, CHUNK_ROWS at a time (so a
slice of any size runs in bounded memory), downcasts each chunk's columns
(integers to the smallest type that holds them, repeated strings to
categories), stores the slice as one compact file OUT_DIR/slice-INDEX.pkl.gz,
and prints the slice's summary as its result: rows, and per (region, year) the
rows and the exact sum of `amount`. rx_merge.py reduces the summaries.
"""
import os
import sys

import pandas as pd

import orchard.slice

CHUNK_ROWS = 20_000
# Read as text: drug codes (digits and letters); the rest is numeric.
TEXT = {"ingredient_code": str}


def downcast(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_integer_dtype(s):
            out[col] = pd.to_numeric(s, downcast="unsigned" if s.min() >= 0 else "integer")
        elif pd.api.types.is_float_dtype(s):
            out[col] = pd.to_numeric(s, downcast="float")
        elif s.dtype == object and s.nunique() < len(s) // 2:
            out[col] = s.astype("category")
    return out


def main() -> None:
    s = orchard.slice.current()
    if len(sys.argv) != 3:
        raise orchard.slice.PermanentFailure("usage: rx_slice.py CSV OUT_DIR (params.args)")
    csv_path, out_dir = sys.argv[1], sys.argv[2]
    if not os.path.isfile(csv_path):
        raise orchard.slice.PermanentFailure(f"{csv_path}: no such file")
    os.makedirs(out_dir, exist_ok=True)

    parts, groups = [], None
    rows = mem_before = mem_after = 0
    reader = pd.read_csv(csv_path, skiprows=range(1, s.begin + 1), nrows=s.size,
                         chunksize=CHUNK_ROWS, dtype=TEXT)
    for chunk in reader:
        mem_before += int(chunk.memory_usage(deep=True).sum())
        small = downcast(chunk)
        mem_after += int(small.memory_usage(deep=True).sum())
        parts.append(small)
        g = (chunk.assign(amount=chunk["amount"].astype("int64"))
             .groupby(["region", "year"])["amount"].agg(["size", "sum"]))
        groups = g if groups is None else groups.add(g, fill_value=0)
        rows += len(chunk)
        s.progress(rows)

    # One compact file per slice; written under a temporary name and renamed,
    # so a retried attempt never leaves half a file.
    path = os.path.join(out_dir, f"slice-{s.index:05d}.pkl.gz")
    tmp = f"{path}.tmp-{os.getpid()}"
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    frame.to_pickle(tmp, compression="gzip")
    os.replace(tmp, path)

    summary = [] if groups is None else [
        [int(region), int(year), int(r["size"]), int(r["sum"])]
        for (region, year), r in groups.sort_index().iterrows()]
    s.result({"index": s.index, "rows": rows, "file": path, "file_bytes": os.path.getsize(path),
              "memory_bytes_before": mem_before, "memory_bytes_after": mem_after,
              "groups": summary})


if __name__ == "__main__":
    main()
