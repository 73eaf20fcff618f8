"""orchard.aio.Client: the asyncio client, with the methods of orchard.Client.

Differences, all forced by asyncio: calls are awaited; tasks(), watch(),
subtasks() and history() are async iterators; TaskHandle.result is a
coroutine method (`await handle.result()`), since a property cannot await.
"""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any, AsyncIterator, List, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio

from orchard import _common as c
from orchard import errors
from orchard.client import _RECONNECT, _outcome
from orchard.models import HistoryEntry, ServerInfo, State, Subtask, Task, Worker
from orchard.v1 import orchard_pb2 as pb
from orchard.v1 import orchard_pb2_grpc as pb_grpc

__all__ = ["Client", "TaskHandle"]


class Client:
    """As orchard.Client, on asyncio. Make it inside the running loop."""

    def __init__(self, server: str = c.DEFAULT_SERVER, *, token: Optional[str] = None,
                 ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, timeout: float = 30.0,
                 retry: c.RetryPolicy = c.RetryPolicy()):
        self._s = c.Settings(server, token, ca, cert, key, timeout, retry)
        creds = self._s.credentials()
        self._channel = (grpc.aio.secure_channel(server, creds, options=c.CHANNEL_OPTIONS)
                         if creds else grpc.aio.insecure_channel(server,
                                                                 options=c.CHANNEL_OPTIONS))
        self._stub = pb_grpc.TaskServiceStub(self._channel)

    @classmethod
    def from_env(cls, **overrides) -> "Client":
        kw = c.env_settings()
        kw.update(overrides)
        return cls(**kw)

    @property
    def server(self) -> str:
        return self._s.server

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _call(self, name: str, request, *, safe: bool = True,
                    timeout: Optional[float] = None):
        method = getattr(self._stub, name)
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return await method(request, timeout=timeout or self._s.timeout,
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
                await asyncio.sleep(delay)
                attempt += 1

    async def submit(self, kind: str, range: Sequence[int], *, subtasks: Optional[int] = None,
                     chunk: Optional[int] = None, params: Optional[Mapping[str, Any]] = None,
                     max_attempts: Optional[int] = None,
                     max_failed_subtasks: Optional[int] = None,
                     deadline: Optional[timedelta] = None, parallelism: Optional[int] = None,
                     priority: Optional[int] = None, labels: Optional[Mapping[str, str]] = None,
                     request_id: Optional[str] = None) -> "TaskHandle":
        spec = c.task_spec(kind, range, subtasks=subtasks, chunk=chunk, params=params,
                           max_attempts=max_attempts, max_failed_subtasks=max_failed_subtasks,
                           deadline=deadline, parallelism=parallelism, priority=priority,
                           labels=labels, request_id=request_id)
        resp = await self._call("Submit", pb.SubmitRequest(spec=spec))
        return TaskHandle(self, resp.task.id, Task.from_proto(resp.task))

    async def submit_many(self, specs: Sequence[Mapping[str, Any]]
                          ) -> List[Union["TaskHandle", errors.OrchardError]]:
        out: List[Any] = [None] * len(specs)
        pending = []
        for i, d in enumerate(specs):
            try:
                pending.append((i, c.spec_from_dict(d)))
            except errors.OrchardError as e:
                out[i] = e
        for lo in range(0, len(pending), c.MAX_SUBMIT_BATCH):
            chunk = pending[lo:lo + c.MAX_SUBMIT_BATCH]
            resp = await self._call("SubmitTasks",
                                    pb.SubmitTasksRequest(specs=[s for _, s in chunk]))
            for (i, _), r in zip(chunk, resp.results):
                out[i] = (TaskHandle(self, r.task.id, Task.from_proto(r.task)) if r.code == 0
                          else errors.from_code(r.code, r.message, r.field))
        return out

    def task(self, task_id: str) -> "TaskHandle":
        return TaskHandle(self, task_id)

    async def get(self, task_id: str) -> Task:
        return Task.from_proto(await self._call("GetTask", pb.GetTaskRequest(id=task_id)))

    async def tasks(self, state=None, kind: Optional[str] = None,
                    labels: Optional[Mapping[str, str]] = None) -> AsyncIterator[Task]:
        req = c.list_tasks_request(state, kind, labels)
        while True:
            resp = await self._call("ListTasks", req)
            for t in resp.tasks:
                yield Task.from_proto(t)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    async def workers(self) -> List[Worker]:
        resp = await self._call("ListWorkers", pb.ListWorkersRequest())
        return [Worker.from_proto(w) for w in resp.workers]

    async def kinds(self) -> List[str]:
        return sorted({k for w in await self.workers() if w.alive for k in w.kinds})

    async def server_info(self) -> ServerInfo:
        info = ServerInfo.from_proto(
            self._s.server, await self._call("GetServerInfo", pb.GetServerInfoRequest()))
        if info.api_version < c.API_VERSION:
            raise errors.ServerTooOld(
                f"the server at {self._s.server} speaks API version {info.api_version} "
                f"(orchard-server {info.version}); this client needs {c.API_VERSION}")
        return info

    async def _subtasks(self, task_id: str, state=None) -> AsyncIterator[Subtask]:
        req = c.list_subtasks_request(task_id, state)
        while True:
            resp = await self._call("ListSubtasks", req)
            for s in resp.subtasks:
                yield Subtask.from_proto(s)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    async def _history(self, task_id: str, subtask: Optional[int] = None
                       ) -> AsyncIterator[HistoryEntry]:
        req = pb.GetHistoryRequest(task_id=task_id, page_size=1000)
        if subtask is not None:
            req.subtask_index = subtask
        while True:
            resp = await self._call("GetHistory", req)
            for h in resp.entries:
                yield HistoryEntry.from_proto(h)
            if not resp.next_page_token:
                return
            req.page_token = resp.next_page_token

    async def _watch(self, task_id: str, deadline: Optional[float],
                     reconnect_for: float) -> AsyncIterator[Task]:
        after = 0
        attempt = 0
        lost_since: Optional[float] = None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise _Deadline()
            call = self._stub.WatchTasks(
                pb.WatchTasksRequest(task_id=task_id, after_revision=after),
                timeout=remaining, metadata=self._s.metadata())
            err = None
            try:
                async for resp in call:
                    lost_since, attempt = None, 0
                    after = resp.task.revision
                    task = Task.from_proto(resp.task)
                    yield task
                    if task.is_terminal:
                        call.cancel()
                        return
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None:
                    raise _Deadline() from None
                if code not in _RECONNECT:
                    raise errors.from_rpc_error(e) from e
                err = e
            now = time.monotonic()
            lost_since = lost_since or now
            if now - lost_since > reconnect_for:
                if err is not None:
                    raise errors.from_rpc_error(err) from err
                raise errors.Unavailable(f"watch of {task_id}: no answer from "
                                         f"{self._s.server} for {reconnect_for:g} s")
            await asyncio.sleep(self._s.retry.delay(attempt))
            attempt += 1


class _Deadline(Exception):
    pass


class TaskHandle:
    """As orchard.TaskHandle, with awaitable methods."""

    def __init__(self, client: Client, task_id: str, task: Optional[Task] = None):
        self._client = client
        self.id = task_id
        self.task = task

    def __repr__(self) -> str:
        s = self.task.state.name if self.task else "?"
        return f"aio.TaskHandle({self.id!r}, state={s})"

    async def refresh(self) -> Task:
        self.task = await self._client.get(self.id)
        return self.task

    async def result(self) -> Any:
        if self.task is None or not self.task.is_terminal:
            await self.refresh()
        return self.task.result

    async def watch(self, *, timeout: Optional[float] = None,
                    reconnect_for: float = 60.0) -> AsyncIterator[Task]:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            async for t in self._client._watch(self.id, deadline, reconnect_for):
                self.task = t
                yield t
        except _Deadline:
            raise errors.WaitTimeout(self.id, timeout, self.task) from None

    async def wait(self, timeout: Optional[float] = None) -> Task:
        task = self.task
        async for task in self.watch(timeout=timeout):
            pass
        failed = []
        if task.state == State.ERROR:
            async for s in self.subtasks(state=State.ERROR):
                failed.append(s)
                if len(failed) >= 100:
                    break
        return _outcome(task, lambda: failed)

    async def cancel(self, reason: str = "") -> Task:
        self.task = Task.from_proto(await self._client._call(
            "CancelTask", pb.CancelTaskRequest(id=self.id, reason=reason)))
        return self.task

    async def retry(self) -> Task:
        self.task = Task.from_proto(await self._client._call(
            "RetryTask", pb.RetryTaskRequest(id=self.id), safe=False))
        return self.task

    def subtasks(self, state=None) -> AsyncIterator[Subtask]:
        return self._client._subtasks(self.id, state)

    def history(self, subtask: Optional[int] = None) -> AsyncIterator[HistoryEntry]:
        return self._client._history(self.id, subtask)

    async def result_frame(self):
        if self.task is None or not self.task.is_terminal:
            await self.refresh()
        return self.task.result_frame()
