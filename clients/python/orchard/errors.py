"""Orchard's exceptions: one class per gRPC status code, and the task outcomes
that `TaskHandle.wait()` raises.

Every `OrchardError` carries `code` (a `grpc.StatusCode`), `message` (the
server's text) and `field` (the request field the server refused, from the
`google.rpc.BadRequest` detail of an INVALID_ARGUMENT; None otherwise).
"""
from __future__ import annotations

from typing import Optional

import grpc

from orchard.v1 import error_details_pb2

__all__ = [
    "OrchardError", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
    "ServerTooOld", "TaskError", "TaskFailed", "TaskCancelled", "WaitTimeout", "from_code",
    "from_rpc_error",
]


class OrchardError(Exception):
    """A call the server (or the channel) refused."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str = "", *, field: Optional[str] = None,
                 code: Optional[grpc.StatusCode] = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class Cancelled(OrchardError): code = grpc.StatusCode.CANCELLED
class Unknown(OrchardError): code = grpc.StatusCode.UNKNOWN
class InvalidArgument(OrchardError): code = grpc.StatusCode.INVALID_ARGUMENT
class DeadlineExceeded(OrchardError): code = grpc.StatusCode.DEADLINE_EXCEEDED
class NotFound(OrchardError): code = grpc.StatusCode.NOT_FOUND
class AlreadyExists(OrchardError): code = grpc.StatusCode.ALREADY_EXISTS
class PermissionDenied(OrchardError): code = grpc.StatusCode.PERMISSION_DENIED
class ResourceExhausted(OrchardError): code = grpc.StatusCode.RESOURCE_EXHAUSTED
class FailedPrecondition(OrchardError): code = grpc.StatusCode.FAILED_PRECONDITION
class Aborted(OrchardError): code = grpc.StatusCode.ABORTED
class OutOfRange(OrchardError): code = grpc.StatusCode.OUT_OF_RANGE
class Unimplemented(OrchardError): code = grpc.StatusCode.UNIMPLEMENTED
class Internal(OrchardError): code = grpc.StatusCode.INTERNAL
class Unavailable(OrchardError): code = grpc.StatusCode.UNAVAILABLE
class DataLoss(OrchardError): code = grpc.StatusCode.DATA_LOSS
class Unauthenticated(OrchardError): code = grpc.StatusCode.UNAUTHENTICATED


class ServerTooOld(Unimplemented):
    """The server lacks an RPC this client needs (it predates it)."""


_BY_CODE = {cls.code: cls for cls in (
    Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
    PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented,
    Internal, Unavailable, DataLoss, Unauthenticated)}
_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def from_code(code, message: str, field: Optional[str] = None) -> OrchardError:
    """The exception for a status code (a grpc.StatusCode or its number)."""
    if not isinstance(code, grpc.StatusCode):
        code = _BY_VALUE.get(int(code), grpc.StatusCode.UNKNOWN)
    cls = _BY_CODE.get(code, Unknown)
    return cls(message, field=field or None, code=code)


_BAD_REQUEST_TYPES = ("type.googleapis.com/google.rpc.BadRequest",
                      "type.googleapis.com/orchard.v1.rpc.BadRequest")


def field_from_details(details: Optional[bytes]) -> Optional[str]:
    """The first refused field of a grpc-status-details-bin value, if any."""
    if not details:
        return None
    status = error_details_pb2.Status()
    try:
        status.ParseFromString(details)
    except Exception:  # a detail we cannot read is no field, not a new error
        return None
    for any_ in status.details:
        if any_.type_url in _BAD_REQUEST_TYPES:
            bad = error_details_pb2.BadRequest()
            bad.ParseFromString(any_.value)
            for v in bad.field_violations:
                if v.field:
                    return v.field
    return None


def from_rpc_error(err: grpc.RpcError) -> OrchardError:
    """Converts a grpc.RpcError (sync or aio) into Orchard's exception."""
    code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
    message = err.details() if callable(getattr(err, "details", None)) else str(err)
    details = None
    try:
        md = err.trailing_metadata() or ()
        for key, value in md:
            if key == "grpc-status-details-bin":
                details = value
    except Exception:
        pass
    exc = from_code(code, message or "", field_from_details(details))
    exc.__cause__ = err
    return exc


class TaskError(Exception):
    """A task ended other than SUCCEEDED; `task` is its final snapshot."""

    def __init__(self, task, message: str):
        super().__init__(message)
        self.task = task


class TaskFailed(TaskError):
    """The task ended in ERROR (outcome FAILED). `failed_subtasks` lists the
    subtasks in ERROR (at most 100), each with its last error."""

    def __init__(self, task, failed_subtasks=()):
        self.failed_subtasks = list(failed_subtasks)
        lines = [f"task {task.id} failed: {task.reason or 'no reason given'}"]
        for s in self.failed_subtasks[:5]:
            lines.append(f"  subtask {s.index} [{s.begin}, {s.end}) attempt {s.attempt}: {s.error}")
        if len(self.failed_subtasks) > 5:
            lines.append(f"  ... and {len(self.failed_subtasks) - 5} more")
        super().__init__(task, "\n".join(lines))


class TaskCancelled(TaskError):
    """The task was cancelled."""

    def __init__(self, task):
        super().__init__(task, f"task {task.id} was cancelled: {task.reason or 'no reason given'}")


class WaitTimeout(TimeoutError):
    """wait(timeout=...) passed before the task ended; `task` is the last snapshot seen."""

    def __init__(self, task_id: str, timeout: float, task=None):
        super().__init__(f"task {task_id} did not end within {timeout:g} s")
        self.task_id = task_id
        self.task = task
