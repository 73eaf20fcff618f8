"""The prescriptions example end to end: a real server and two workers run
rx_slice.py per slice and rx_merge.py as the reduce; the result is checked
exactly against pandas over the whole file, and the stored slices against the
CSV itself."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

import orchard

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


# This test verifies chunk -> downcast -> store -> merge as one task across two
# workers: every row in exactly one slice file, the downcast columns smaller
# and equal in value, and the merged (region, year) sums exact.
def test_prescriptions_workflow(server, tmp_path):
    csv = tmp_path / "rx.csv"
    subprocess.run([sys.executable, ROOT / "bench" / "gen-prescriptions", "--rows", "30000",
                    "--seed", "7", "-o", csv], check=True, capture_output=True)
    config = json.loads((HERE / "worker.json").read_text())
    programs = config["exec"]["programs"]
    programs["rx-slice"]["argv"] = [sys.executable, str(HERE / "rx_slice.py")]
    programs["rx-merge"]["argv"] = [sys.executable, str(HERE / "rx_merge.py")]
    server.start_worker("a", slots=2, config=config)
    server.start_worker("b", slots=2, config=config)
    out = tmp_path / "slices"
    with orchard.Client(server.address, timeout=15) as c:
        server.wait_worker(c, "a")
        server.wait_worker(c, "b")
        r = subprocess.run([sys.executable, HERE / "run_rx.py", csv, out, "--slices", "5",
                            "--server", server.address], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        [task] = list(c.tasks(kind="exec"))
        assert task.result == result and task.succeeded
        ran_on = {e.actor for e in c.task(task.id).history() if e.event == "Succeeded"}
        assert ran_on and ran_on <= {w.id for w in c.workers()}

    full = pd.read_csv(csv, dtype={"ingredient_code": str})
    expected = (full.groupby(["region", "year"])["amount"].agg(["size", "sum"]).sort_index())
    assert result["row_count"] == 30000 and result["slices"] == 5
    assert result["amount"] == int(full["amount"].sum())
    assert result["rows"] == [[int(rg), int(y), int(v["size"]), int(v["sum"])]
                                       for (rg, y), v in expected.iterrows()]
    assert task.result_frame().shape == (len(expected), 4)

    files = sorted(out.glob("slice-*.pkl.gz"))
    assert [f.name for f in files] == [f"slice-{i:05d}.pkl.gz" for i in range(5)]
    assert result["files"] == [str(f) for f in files]
    stored = pd.concat([pd.read_pickle(f, compression="gzip") for f in files],
                       ignore_index=True)
    assert len(stored) == 30000
    assert result["memory_bytes_after"] < result["memory_bytes_before"] * 0.75
    assert stored["amount"].dtype.itemsize < 8 and stored["year"].dtype.itemsize <= 2
    pd.testing.assert_frame_equal(stored.astype(str), full.astype(str))
