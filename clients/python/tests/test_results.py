"""result_frame() over a real csv.aggregate task, and what the client checks
before sending anything."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import orchard
from orchard import State


# This test verifies that a csv.aggregate result becomes a pandas DataFrame
# equal to pandas' own group-by of the file.
def test_result_frame_of_csv_aggregate(running, client, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("region,year,amount\n11,2020,5\n11,2020,7\n26,2021,100\n11,2021,1\n")
    h = client.submit("csv.aggregate", range=(0, csv.stat().st_size), params={
        "path": str(csv), "group_by": ["region", "year"],
        "aggregates": [{"column": "amount", "op": "sum"}]})
    h.wait(timeout=60)
    df = h.result_frame()
    assert list(df.columns) == ["region", "year", "amount_sum"]
    got = sorted((str(r), str(y), float(a)) for r, y, a in df.itertuples(index=False))
    assert got == [("11", "2020", 12.0), ("11", "2021", 1.0), ("26", "2021", 100.0)]
    with pytest.raises(ValueError, match="no columns and rows"):
        client.submit("sum", range=(0, 3)).wait(timeout=60).result_frame()


# This test verifies that what cannot be sent at all is refused before any
# call, as InvalidArgument naming the argument.
def test_refused_before_sending():
    c = orchard.Client("127.0.0.1:1")  # nothing listens: a call would be Unavailable
    for kwargs, field in [(dict(kind="sum", range=(0,)), "range"),
                          (dict(kind="sum", range=(0, 5), subtasks=2, chunk=2), "split"),
                          (dict(kind="sum", range=(0, 5), params={"x": object()}), "params"),
                          (dict(kind="sum", range=(0, 5), deadline="soon"), "deadline"),
                          (dict(kind=7, range=(0, 5)), "kind")]:
        with pytest.raises(orchard.InvalidArgument) as e:
            c.submit(**kwargs)
        assert e.value.field == field, kwargs
    with pytest.raises(orchard.InvalidArgument) as e:
        list(c.tasks(state="Sleeping"))
    assert e.value.field == "state"
    assert State.parse("running") is State.RUNNING and State.parse(5) is State.TERMINATED
    assert [s.name for s in State if s.is_terminal] == ["ERROR", "TERMINATED"]


# This test verifies PermanentFailure's exit code and message, and that
# result() refuses what is not a JSON object.
def test_permanent_failure_exits_65():
    p = subprocess.run([sys.executable, "-c",
                        "import orchard.slice; raise orchard.slice.PermanentFailure('bad row 7')"],
                       capture_output=True, text=True)
    assert p.returncode == 65 and "bad row 7" in p.stderr
    s = orchard.slice.current({"ORCHARD_SUBTASK_INDEX": "0", "ORCHARD_RANGE_BEGIN": "0",
                               "ORCHARD_RANGE_END": "1", "ORCHARD_ATTEMPT": "1"})
    with pytest.raises(TypeError):
        s.result([1, 2])
