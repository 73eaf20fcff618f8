"""The model types: dataclasses over the proto messages, with enums for states
and outcomes, `datetime`/`timedelta` for times and decoded JSON for params and
results. Built from the protos by `from_proto`; never sent back."""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

from orchard.v1 import orchard_pb2 as pb

__all__ = ["State", "Outcome", "SubtaskCounts", "Task", "Subtask", "HistoryEntry", "Worker",
           "ServerInfo"]


class State(enum.IntEnum):
    """The lifecycle state shared by tasks and subtasks."""
    PREPARING = pb.PREPARING
    RUNNING = pb.RUNNING
    TERMINATING = pb.TERMINATING
    ERROR = pb.ERROR
    TERMINATED = pb.TERMINATED

    @property
    def is_terminal(self) -> bool:
        """ERROR and TERMINATED: nothing moves on without a retry."""
        return self in (State.ERROR, State.TERMINATED)

    @classmethod
    def parse(cls, value) -> "State":
        """A State from itself, its number, or its name in any case ("Running")."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"state: unknown state {value!r} (one of "
                                 f"{', '.join(s.name for s in cls)})") from None
        return cls(int(value))


class Outcome(enum.IntEnum):
    """How a task or subtask ended; NONE while it has not."""
    NONE = pb.OUTCOME_UNSPECIFIED
    SUCCEEDED = pb.SUCCEEDED
    CANCELLED = pb.CANCELLED
    FAILED = pb.FAILED


def _time(ms: int) -> Optional[datetime]:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc) if ms else None


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # a worker's result that is not JSON stays as it came


def _state(v: int) -> Optional[State]:
    return State(v) if v else None


@dataclass(frozen=True)
class SubtaskCounts:
    total: int = 0
    preparing: int = 0
    running: int = 0
    terminating: int = 0
    error: int = 0
    terminated: int = 0
    succeeded: int = 0
    cancelled: int = 0
    items_done: int = 0
    items_total: int = 0

    @classmethod
    def from_proto(cls, c: "pb.SubtaskCounts") -> "SubtaskCounts":
        return cls(c.total, c.preparing, c.running, c.terminating, c.error, c.terminated,
                   c.succeeded, c.cancelled, c.items_done, c.items_total)


@dataclass(frozen=True)
class Task:
    """One task as the server stored it at `revision`."""
    id: str
    kind: str
    begin: int
    end: int
    state: State
    outcome: Outcome
    reason: str
    params: Dict[str, Any]
    result: Any                      # the decoded result JSON (None until finalised)
    subtasks: SubtaskCounts
    labels: Dict[str, str]
    request_id: str
    max_attempts: int
    max_failed_subtasks: Optional[int]
    deadline: Optional[timedelta]
    parallelism: Optional[int]
    priority: int
    version: int
    revision: int
    generation: int
    created: Optional[datetime]
    updated: Optional[datetime]
    started: Optional[datetime]
    finished: Optional[datetime]
    reconciler: str = ""
    proto: Any = field(default=None, repr=False, compare=False)  # the pb.Task it came from

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def succeeded(self) -> bool:
        return self.state == State.TERMINATED and self.outcome == Outcome.SUCCEEDED

    @classmethod
    def from_proto(cls, t: "pb.Task") -> "Task":
        s, p = t.spec, t.spec.policy
        return cls(
            id=t.id, kind=s.kind, begin=s.begin, end=s.end, state=State(t.state) if t.state else
            State.PREPARING, outcome=Outcome(t.outcome), reason=t.reason,
            params=_json(s.params_json) or {}, result=_json(t.result_json),
            subtasks=SubtaskCounts.from_proto(t.counts), labels=dict(s.labels),
            request_id=s.request_id, max_attempts=p.max_attempts,
            max_failed_subtasks=p.max_failed_subtasks if p.HasField("max_failed_subtasks") else None,
            deadline=timedelta(milliseconds=p.deadline_ms) if p.deadline_ms else None,
            parallelism=p.parallelism or None, priority=p.priority, version=t.version,
            revision=t.revision, generation=t.generation, created=_time(t.create_time_ms),
            updated=_time(t.update_time_ms), started=_time(t.start_time_ms),
            finished=_time(t.finish_time_ms), reconciler=t.reconciler, proto=t)

    def result_frame(self):
        """A csv.aggregate result ({"columns", "rows"}) as a pandas DataFrame.

        Raises ImportError when pandas is not installed, ValueError when the
        task has no such result (yet)."""
        import pandas as pd  # optional dependency
        r = self.result
        if not isinstance(r, dict) or "columns" not in r or "rows" not in r:
            raise ValueError(f"task {self.id}: result has no columns and rows "
                             f"(state {self.state.name}, kind {self.kind})")
        return pd.DataFrame(r["rows"], columns=r["columns"])


@dataclass(frozen=True)
class Subtask:
    task_id: str
    index: int
    begin: int
    end: int
    state: State
    outcome: Outcome
    attempt: int
    epoch: int
    worker: str
    lease_expires: Optional[datetime]
    not_before: Optional[datetime]
    progress: int
    result: Any
    error: str
    version: int
    updated: Optional[datetime]

    @classmethod
    def from_proto(cls, s: "pb.Subtask") -> "Subtask":
        return cls(s.task_id, s.index, s.begin, s.end, State(s.state) if s.state else
                   State.PREPARING, Outcome(s.outcome), s.attempt, s.epoch, s.worker,
                   _time(s.lease_expire_ms), _time(s.not_before_ms), s.progress,
                   _json(s.result_json), s.error, s.version, _time(s.update_time_ms))


@dataclass(frozen=True)
class HistoryEntry:
    """One transition. `from_state`, not `from` (a Python keyword)."""
    task_id: str
    subtask_index: Optional[int]     # None for the task's own transitions
    from_state: Optional[State]      # None for the first row
    to_state: Optional[State]
    event: str
    reason: str
    actor: str
    time: Optional[datetime]
    version: int
    attempt: int

    @classmethod
    def from_proto(cls, h: "pb.HistoryEntry") -> "HistoryEntry":
        return cls(h.task_id, None if h.subtask_index < 0 else h.subtask_index,
                   _state(getattr(h, "from")), _state(h.to), h.event, h.reason, h.actor,
                   _time(h.time_ms), h.version, h.attempt)


@dataclass(frozen=True)
class Worker:
    id: str
    name: str
    kinds: List[str]
    slots: int
    slots_in_use: int
    last_heartbeat: Optional[datetime]
    alive: bool
    draining: bool
    registered: Optional[datetime]

    @classmethod
    def from_proto(cls, w: "pb.WorkerInfo") -> "Worker":
        return cls(w.id, w.name, list(w.kinds), w.slots, w.slots_in_use,
                   _time(w.last_heartbeat_ms), w.alive, w.draining, _time(w.register_time_ms))


@dataclass(frozen=True)
class ServerInfo:
    address: str
    version: str
    git_commit: str
    api_version: int
    store: str
    features: List[str]
    max_submit_batch: int

    @classmethod
    def from_proto(cls, address: str, i: "pb.ServerInfo") -> "ServerInfo":
        return cls(address, i.version, i.git_commit, i.api_version, i.store, list(i.features),
                   i.max_submit_batch)
