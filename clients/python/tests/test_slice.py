"""orchard.slice in a program that a real worker's exec handler runs."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

import orchard
from orchard import State

PROGRAM = textwrap.dedent("""
    import orchard.slice
    s = orchard.slice.current()
    if s.begin == 666:
        raise orchard.slice.PermanentFailure("slice 666 is cursed")
    total = 0
    for i in range(s.begin, s.end):
        total += i * i
        s.progress(i + 1 - s.begin)
    print("some chatter on stdout")
    s.result({"task": s.task_id, "index": s.index, "begin": s.begin, "end": s.end,
              "attempt": s.attempt, "squares": total})
""")


# This test verifies that current() gives each slice its range, index,
# attempt and task id, result() becomes the slice's result, and
# PermanentFailure fails the slice for good (one attempt, no retry).
def test_exec_slice_helper(server, tmp_path):
    prog = tmp_path / "squares.py"
    prog.write_text(PROGRAM)
    server.start_worker("x", slots=2, config={"exec": {"programs": {
        "squares": {"argv": [sys.executable, str(prog)], "timeout": "60s"}}}})
    with orchard.Client(server.address, timeout=15) as c:
        server.wait_worker(c, "x")
        h = c.submit("exec", range=(0, 100), subtasks=4, params={"program": "squares"})
        task = h.wait(timeout=60)
        results = task.result["results"]
        assert [r["index"] for r in results] == [0, 1, 2, 3]
        assert [(r["begin"], r["end"]) for r in results] == [(0, 25), (25, 50), (50, 75),
                                                             (75, 100)]
        assert all(r["task"] == h.id and r["attempt"] == 1 for r in results)
        assert sum(r["squares"] for r in results) == sum(i * i for i in range(100))
        assert all(s.progress == 25 for s in h.subtasks())

        bad = c.submit("exec", range=(600, 700), chunk=66, max_attempts=3,
                       params={"program": "squares"})
        with pytest.raises(orchard.TaskFailed) as e:
            bad.wait(timeout=60)
        [failed] = e.value.failed_subtasks
        assert failed.begin == 666 and failed.attempt == 1
        assert "slice 666 is cursed" in failed.error


# This test verifies that current() outside exec says what is missing.
def test_current_outside_exec():
    with pytest.raises(RuntimeError, match="ORCHARD_SUBTASK_INDEX"):
        orchard.slice.current({})
    s = orchard.slice.current({"ORCHARD_TASK_ID": "t-1", "ORCHARD_SUBTASK_INDEX": "2",
                               "ORCHARD_RANGE_BEGIN": "10", "ORCHARD_RANGE_END": "20",
                               "ORCHARD_ATTEMPT": "1"})
    assert (s.task_id, s.index, s.begin, s.end, s.attempt, s.size) == ("t-1", 2, 10, 20, 1, 10)
