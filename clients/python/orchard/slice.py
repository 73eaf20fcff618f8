"""For programs that Orchard's `exec` handler runs, one slice at a time.

    import orchard.slice
    s = orchard.slice.current()          # begin, end, index, attempt, task_id
    for i in range(s.begin, s.end):
        ...
        s.progress(i + 1 - s.begin)      # a stderr line "ORCHARD_PROGRESS N"
    s.result({"rows": n})                # the last stdout line: the slice's result

Raising `orchard.slice.PermanentFailure("why")` ends the program with exit
code 65, which fails the slice for good (no retry); any other failure is a
failed attempt that the task's policy retries.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Slice", "current", "PermanentFailure", "EXIT_PERMANENT"]

EXIT_PERMANENT = 65  # exec's "fail this slice for good"


class PermanentFailure(SystemExit):
    """Raise to fail the slice for good: the reason goes to stderr (the
    slice's error) and the program exits 65."""

    def __init__(self, reason: str = "permanent failure"):
        super().__init__(EXIT_PERMANENT)
        self.reason = reason
        print(reason, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Slice:
    task_id: str
    index: int
    begin: int
    end: int
    attempt: int

    @property
    def size(self) -> int:
        return self.end - self.begin

    def progress(self, n: int) -> None:
        """Reports that `n` items of this slice are done."""
        print(f"ORCHARD_PROGRESS {int(n)}", file=sys.stderr, flush=True)

    def result(self, obj: Mapping[str, Any]) -> None:
        """Prints the slice's result, a JSON object, as the last stdout line.
        Print nothing on stdout after it."""
        if not isinstance(obj, Mapping):
            raise TypeError(f"result: must be a dict (a JSON object), got {type(obj).__name__}")
        sys.stdout.write("\n" + json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except KeyError:
        raise RuntimeError(f"{name} is not set: this program is meant to be run by an Orchard "
                           f"worker's exec handler") from None
    except ValueError:
        raise RuntimeError(f"{name}: not a number: {env[name]!r}") from None


def current(env: Mapping[str, str] = None) -> Slice:
    """The slice this process runs, from the environment exec sets
    (ORCHARD_TASK_ID, ORCHARD_SUBTASK_INDEX, ORCHARD_RANGE_BEGIN,
    ORCHARD_RANGE_END, ORCHARD_ATTEMPT)."""
    env = os.environ if env is None else env
    return Slice(task_id=env.get("ORCHARD_TASK_ID", ""),
                 index=_int(env, "ORCHARD_SUBTASK_INDEX"),
                 begin=_int(env, "ORCHARD_RANGE_BEGIN"),
                 end=_int(env, "ORCHARD_RANGE_END"),
                 attempt=_int(env, "ORCHARD_ATTEMPT"))
