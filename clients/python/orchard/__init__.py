"""Orchard's Python client.

    import orchard
    client = orchard.Client("127.0.0.1:7070")
    task = client.submit("sum", range=(0, 1_000_000), subtasks=10).wait()
    print(task.result)

orchard.Client (sync) and orchard.aio.Client (asyncio) have the same methods;
orchard.slice is for programs run by a worker's `exec` handler.
"""
from orchard._common import API_VERSION, MAX_SUBMIT_BATCH, RetryPolicy
from orchard.client import Client, TaskHandle
from orchard.errors import *  # noqa: F401,F403  (one class per gRPC code, task outcomes)
from orchard.errors import __all__ as _errors_all
from orchard.models import (HistoryEntry, Outcome, ServerInfo, State, Subtask, SubtaskCounts,
                            Task, Worker)

__version__ = "0.1.0"

__all__ = ["Client", "TaskHandle", "RetryPolicy", "State", "Outcome", "Task", "Subtask",
           "SubtaskCounts", "HistoryEntry", "Worker", "ServerInfo", "API_VERSION",
           "MAX_SUBMIT_BATCH", "__version__"] + list(_errors_all)


def __getattr__(name):
    # orchard.aio and orchard.slice load on first use (aio pulls in asyncio).
    if name in ("aio", "slice"):
        import importlib
        return importlib.import_module(f"orchard.{name}")
    raise AttributeError(f"module 'orchard' has no attribute {name!r}")
