"""orchard.Client: the synchronous client, and TaskHandle.

Thread-safety: a Client may be shared by threads (gRPC channels are); a
TaskHandle's cached snapshot is replaced whole, never mutated.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import grpc

from orchard import _common as c
from orchard import errors
from orchard.models import HistoryEntry, ServerInfo, State, Outcome, Subtask, Task, Worker
from orchard.v1 import orchard_pb2 as pb
from orchard.v1 import orchard_pb2_grpc as pb_grpc

__all__ = ["Client", "TaskHandle"]

# Codes that end a watch stream without saying anything about the task: the
# server went away (UNAVAILABLE), shut down (CANCELLED on its side), or
# closed a stream a restart broke. The watch reconnects and resumes.
_RECONNECT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.INTERNAL)


class Client:
    """A connection to one orchard-server's TaskService.

    `server` is host:port; `token` is sent as a bearer token; `ca`, `cert` and
    `key` (file paths) make the channel TLS (mTLS with cert and key).
    `timeout` bounds each unary call; `retry` paces retries of UNAVAILABLE.
    """

    def __init__(self, server: str = c.DEFAULT_SERVER, *, token: Optional[str] = None,
                 ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, timeout: float = 30.0,
                 retry: c.RetryPolicy = c.RetryPolicy()):
        self._s = c.Settings(server, token, ca, cert, key, timeout, retry)
        creds = self._s.credentials()
        self._channel = (grpc.secure_channel(server, creds, options=c.CHANNEL_OPTIONS) if creds
                         else grpc.insecure_channel(server, options=c.CHANNEL_OPTIONS))
        self._stub = pb_grpc.TaskServiceStub(self._channel)
        self._info: Optional[ServerInfo] = None

    @classmethod
    def from_env(cls, **overrides) -> "Client":
        """A client from orchardctl's config file ($ORCHARD_CONFIG or
        ~/.config/orchard/config.json: server, token, ca, cert, key), then
        ORCHARD_SERVER and ORCHARD_TOKEN, then `overrides`."""
        kw = c.env_settings()
        kw.update(overrides)
        return cls(**kw)

    @property
    def server(self) -> str:
        return self._s.server

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing
    def _call(self, name: str, request, *, safe: bool = True, timeout: Optional[float] = None):
        """One unary call; UNAVAILABLE retried (when `safe`) with capped
        backoff and full jitter for at most retry.total seconds."""
        method = getattr(self._stub, name)
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return method(request, timeout=timeout or self._s.timeout,
                              metadata=self._s.metadata())
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.UNIMPLEMENTED and name in ("GetServerInfo",
                                                                      "SubmitTasks"):
                    raise c.server_too_old(self._s.server, name) from e
                delay = self._s.retry.delay(attempt)
                if (not safe or code != grpc.StatusCode.UNAVAILABLE or
                        time.monotonic() - start + delay > self._s.retry.total):
                    raise errors.from_rpc_error(e) from e
                time.sleep(delay)
                attempt += 1

    # ------------------------------------------------------------- writes
    def submit(self, kind: str, range: Sequence[int], *, subtasks: Optional[int] = None,
               chunk: Optional[int] = None, params: Optional[Mapping[str, Any]] = None,
               max_attempts: Optional[int] = None, max_failed_subtasks: Optional[int] = None,
               deadline: Optional[timedelta] = None, parallelism: Optional[int] = None,
               priority: Optional[int] = None, labels: Optional[Mapping[str, str]] = None,
               request_id: Optional[str] = None) -> "TaskHandle":
        """Submits a task: handler `kind` over the items [begin, end), cut into
        `subtasks` slices (or slices of `chunk` items; 1 slice when neither).
        A request_id is made when not given, so the call is retried safely."""
        spec = c.task_spec(kind, range, subtasks=subtasks, chunk=chunk, params=params,
                           max_attempts=max_attempts, max_failed_subtasks=max_failed_subtasks,
                           deadline=deadline, parallelism=parallelism, priority=priority,
                           labels=labels, request_id=request_id)
        resp = self._call("Submit", pb.SubmitRequest(spec=spec))
        return TaskHandle(self, resp.task.id, Task.from_proto(resp.task))

    def submit_many(self, specs: Sequence[Mapping[str, Any]]
                    ) -> List[Union["TaskHandle", errors.OrchardError]]:
        """Submits many tasks with the batched RPC (SubmitTasks, up to the
        server's maximum per call). Each spec is a dict of submit()'s keyword
        names, `kind` and `range` included. Returns, in order, a TaskHandle
        for each accepted spec and the exception (e.g. InvalidArgument, with
        its `field`) for each refused one: one bad spec refuses no other."""
        out: List[Any] = [None] * len(specs)
        pending = []  # (position, spec)
        for i, d in enumerate(specs):
            try:
                pending.append((i, c.spec_from_dict(d)))
            except errors.OrchardError as e:
                out[i] = e
        for lo in range(0, len(pending), c.MAX_SUBMIT_BATCH):
            chunk = pending[lo:lo + c.MAX_SUBMIT_BATCH]
            resp = self._call("SubmitTasks", pb.SubmitTasksRequest(specs=[s for _, s in chunk]))
            for (i, _), r in zip(chunk, resp.results):
                out[i] = (TaskHandle(self, r.task.id, Task.from_proto(r.task)) if r.code == 0
                          else errors.from_code(r.code, r.message, r.field))
        return out

    # -------------------------------------------------------------- reads
    def task(self, task_id: str) -> "TaskHandle":
        """A handle on an existing task (no call is made)."""
        return TaskHandle(self, task_id)

    def get(self, task_id: str) -> Task:
        return Task.from_proto(self._call("GetTask", pb.GetTaskRequest(id=task_id)))

    def tasks(self, state=None, kind: Optional[str] = None,
              labels: Optional[Mapping[str, str]] = None) -> Iterator[Task]:
        """Every matching task, newest first, fetched a page at a time as the
        iterator is consumed. `state`: a State, its name, or a list of them."""
        req = c.list_tasks_request(state, kind, labels)
        while True:
            resp = self._call("ListTasks", req)
            for t in resp.tasks:
                yield Task.from_proto(t)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    def workers(self) -> List[Worker]:
        return [Worker.from_proto(w)
                for w in self._call("ListWorkers", pb.ListWorkersRequest()).workers]

    def kinds(self) -> List[str]:
        """The handler kinds that live workers run, sorted."""
        return sorted({k for w in self.workers() if w.alive for k in w.kinds})

    def server_info(self) -> ServerInfo:
        """The server's version, API level, store and features. Raises
        ServerTooOld when the server predates GetServerInfo."""
        info = ServerInfo.from_proto(self._s.server,
                                     self._call("GetServerInfo", pb.GetServerInfoRequest()))
        if info.api_version < c.API_VERSION:
            raise errors.ServerTooOld(
                f"the server at {self._s.server} speaks API version {info.api_version} "
                f"(orchard-server {info.version}); this client needs {c.API_VERSION}")
        self._info = info
        return info

    # The calls TaskHandle makes.
    def _subtasks(self, task_id: str, state=None) -> Iterator[Subtask]:
        req = c.list_subtasks_request(task_id, state)
        while True:
            resp = self._call("ListSubtasks", req)
            for s in resp.subtasks:
                yield Subtask.from_proto(s)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    def _history(self, task_id: str, subtask: Optional[int] = None) -> Iterator[HistoryEntry]:
        req = pb.GetHistoryRequest(task_id=task_id, page_size=1000)
        if subtask is not None:
            req.subtask_index = subtask
        while True:
            resp = self._call("GetHistory", req)
            for h in resp.entries:
                yield HistoryEntry.from_proto(h)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    def _watch(self, task_id: str, deadline: Optional[float],
               reconnect_for: float) -> Iterator[Task]:
        """Snapshots of one task until it is terminal; reconnects (with
        backoff, resuming after the last revision seen) while the server is
        away, for at most `reconnect_for` seconds without an answer."""
        after = 0
        attempt = 0
        lost_since: Optional[float] = None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise _Deadline()
            stream = self._stub.WatchTasks(
                pb.WatchTasksRequest(task_id=task_id, after_revision=after),
                timeout=remaining, metadata=self._s.metadata())
            try:
                for resp in stream:
                    lost_since, attempt = None, 0
                    after = resp.task.revision
                    task = Task.from_proto(resp.task)
                    yield task
                    if task.is_terminal:
                        stream.cancel()
                        return
                code = grpc.StatusCode.UNAVAILABLE  # ended cleanly before the end: resume
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None:
                    raise _Deadline() from None
                if code not in _RECONNECT:
                    raise errors.from_rpc_error(e) from e
                err = e
            else:
                err = None
            now = time.monotonic()
            lost_since = lost_since or now
            if now - lost_since > reconnect_for:
                if err is not None:
                    raise errors.from_rpc_error(err) from err
                raise errors.Unavailable(f"watch of {task_id}: no answer from "
                                         f"{self._s.server} for {reconnect_for:g} s")
            time.sleep(self._s.retry.delay(attempt))
            attempt += 1


class _Deadline(Exception):
    pass


class TaskHandle:
    """One task: its id, its last snapshot (`task`), and what can be done to
    it. Cheap; made by submit(), submit_many() and Client.task()."""

    def __init__(self, client: Client, task_id: str, task: Optional[Task] = None):
        self._client = client
        self.id = task_id
        self.task = task

    def __repr__(self) -> str:
        s = self.task.state.name if self.task else "?"
        return f"TaskHandle({self.id!r}, state={s})"

    def refresh(self) -> Task:
        """Reads the task again; returns and keeps the snapshot."""
        self.task = self._client.get(self.id)
        return self.task

    @property
    def result(self) -> Any:
        """The decoded result JSON (None until the task is finalised)."""
        if self.task is None or not self.task.is_terminal:
            self.refresh()
        return self.task.result

    def watch(self, *, timeout: Optional[float] = None,
              reconnect_for: float = 60.0) -> Iterator[Task]:
        """Task snapshots as it changes, ending after the terminal one.
        Reconnects and resumes across server restarts (for at most
        `reconnect_for` seconds without an answer)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for t in self._client._watch(self.id, deadline, reconnect_for):
                self.task = t
                yield t
        except _Deadline:
            raise errors.WaitTimeout(self.id, timeout, self.task) from None

    def wait(self, timeout: Optional[float] = None) -> Task:
        """Waits until the task ends and returns it when it SUCCEEDED. Raises
        TaskFailed (with its reason and failed subtasks), TaskCancelled, or
        WaitTimeout when `timeout` seconds pass first."""
        task = self.task
        for task in self.watch(timeout=timeout):
            pass
        return _outcome(task, lambda: list(_take(self.subtasks(state=State.ERROR), 100)))

    def cancel(self, reason: str = "") -> Task:
        self.task = Task.from_proto(self._client._call(
            "CancelTask", pb.CancelTaskRequest(id=self.id, reason=reason)))
        return self.task

    def retry(self) -> Task:
        """Re-runs the slices that did not succeed (the task must be in ERROR)."""
        self.task = Task.from_proto(self._client._call(
            "RetryTask", pb.RetryTaskRequest(id=self.id), safe=False))
        return self.task

    def subtasks(self, state=None) -> Iterator[Subtask]:
        """The task's subtasks by index, a page at a time (lazy)."""
        return self._client._subtasks(self.id, state)

    def history(self, subtask: Optional[int] = None) -> Iterator[HistoryEntry]:
        """The transitions, oldest first (lazy); `subtask=-1`: the task's own."""
        return self._client._history(self.id, subtask)

    def result_frame(self):
        """The csv.aggregate result as a pandas DataFrame (see Task.result_frame)."""
        if self.task is None or not self.task.is_terminal:
            self.refresh()
        return self.task.result_frame()


def _take(it, n):
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x


def _outcome(task: Task, failed_subtasks) -> Task:
    if task.state == State.ERROR:
        raise errors.TaskFailed(task, failed_subtasks())
    if task.outcome == Outcome.CANCELLED:
        raise errors.TaskCancelled(task)
    return task
