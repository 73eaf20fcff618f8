"""What the sync and async clients share: connection settings, request
building, paging tokens, and the retry policy. No I/O here."""
from __future__ import annotations

import json
import os
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from orchard import errors
from orchard.models import State
from orchard.v1 import orchard_pb2 as pb

# The TaskService API level this client needs (ServerInfo.api_version):
# 2 = GetServerInfo and SubmitTasks.
API_VERSION = 2
DEFAULT_SERVER = "127.0.0.1:7070"
MAX_SUBMIT_BATCH = 1000  # the server's documented maximum (ServerInfo.max_submit_batch)

# The keyword names of submit(), which submit_many's dicts use too.
SUBMIT_KEYS = ("kind", "range", "subtasks", "chunk", "params", "max_attempts",
               "max_failed_subtasks", "deadline", "parallelism", "priority", "labels",
               "request_id")


@dataclass(frozen=True)
class RetryPolicy:
    """UNAVAILABLE is retried, for calls safe to repeat, with capped exponential
    backoff and full jitter: sleep uniform(0, min(cap, initial * 2**n)), for at
    most `total` seconds in all."""
    initial: float = 0.1
    cap: float = 5.0
    total: float = 30.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.initial * (2 ** attempt)))


@dataclass(frozen=True)
class Settings:
    server: str
    token: Optional[str]
    ca: Optional[str]
    cert: Optional[str]
    key: Optional[str]
    timeout: float
    retry: RetryPolicy

    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def credentials(self) -> Optional[grpc.ChannelCredentials]:
        if not (self.ca or self.cert or self.key):
            return None
        if bool(self.cert) != bool(self.key):
            raise ValueError("cert and key: give both or neither")

        def read(path):
            with open(path, "rb") as f:
                return f.read()
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca) if self.ca else None,
            private_key=read(self.key) if self.key else None,
            certificate_chain=read(self.cert) if self.cert else None)


# The channel's own reconnect backoff (gRPC's default starts at 1 s and grows
# to 120 s) capped low, so a restarted server is found within seconds.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20),
                   ("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 2000)]


def config_file_path() -> str:
    """orchardctl's config file: $ORCHARD_CONFIG, else ~/.config/orchard/config.json."""
    return os.environ.get("ORCHARD_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".config", "orchard", "config.json")


def env_settings() -> Dict[str, Any]:
    """Client keyword arguments from the config file, then ORCHARD_SERVER and
    ORCHARD_TOKEN over it."""
    out: Dict[str, Any] = {}
    path = config_file_path()
    if os.path.exists(path):
        with open(path) as f:
            try:
                cfg = json.load(f)
            except ValueError as e:
                raise ValueError(f"{path}: not valid JSON: {e}") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: must be a JSON object")
        for k in ("server", "token", "ca", "cert", "key"):
            if cfg.get(k):
                out[k] = cfg[k]
    if os.environ.get("ORCHARD_SERVER"):
        out["server"] = os.environ["ORCHARD_SERVER"]
    if os.environ.get("ORCHARD_TOKEN"):
        out["token"] = os.environ["ORCHARD_TOKEN"]
    return out


def _states(state) -> List[int]:
    if state is None:
        return []
    if isinstance(state, (str, int, State)):
        state = [state]
    try:
        return [int(State.parse(s)) for s in state]
    except ValueError as e:
        raise errors.InvalidArgument(str(e), field="state") from None


def _ms(value, name: str) -> int:
    if isinstance(value, timedelta):
        ms = value.total_seconds() * 1000
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ms = float(value) * 1000  # seconds
    else:
        raise errors.InvalidArgument(f"{name}: a timedelta or seconds, got {value!r}", field=name)
    if ms <= 0:
        raise errors.InvalidArgument(f"{name}: must be positive", field=name)
    return int(ms)


def task_spec(kind: str, range: Sequence[int], *, subtasks: Optional[int] = None,
              chunk: Optional[int] = None, params: Optional[Mapping[str, Any]] = None,
              max_attempts: Optional[int] = None, max_failed_subtasks: Optional[int] = None,
              deadline: Optional[Union[timedelta, float]] = None,
              parallelism: Optional[int] = None, priority: Optional[int] = None,
              labels: Optional[Mapping[str, str]] = None,
              request_id: Optional[str] = None) -> pb.TaskSpec:
    """A TaskSpec from submit()'s arguments. Raises InvalidArgument (naming the
    argument) for what cannot be sent at all; the server checks the rest."""
    spec = pb.TaskSpec(kind=kind if isinstance(kind, str) else "")
    if not isinstance(kind, str):
        raise errors.InvalidArgument(f"kind: must be a string, got {kind!r}", field="kind")
    try:
        begin, end = range
        spec.begin, spec.end = int(begin), int(end)
    except (TypeError, ValueError):
        raise errors.InvalidArgument(f"range: must be (begin, end), got {range!r}",
                                     field="range") from None
    if subtasks is not None and chunk is not None:
        raise errors.InvalidArgument("split: give either subtasks or chunk, not both",
                                     field="split")
    if chunk is not None:
        spec.split.chunk = int(chunk)
    else:
        spec.split.subtasks = int(subtasks if subtasks is not None else 1)
    if params is not None:
        if isinstance(params, str):
            spec.params_json = params
        else:
            try:
                spec.params_json = json.dumps(params)
            except (TypeError, ValueError) as e:
                raise errors.InvalidArgument(f"params: not JSON-serialisable: {e}",
                                             field="params") from None
    if max_attempts is not None:
        spec.policy.max_attempts = int(max_attempts)
    if max_failed_subtasks is not None:
        spec.policy.max_failed_subtasks = int(max_failed_subtasks)
    if deadline is not None:
        spec.policy.deadline_ms = _ms(deadline, "deadline")
    if parallelism is not None:
        spec.policy.parallelism = int(parallelism)
    if priority is not None:
        spec.policy.priority = int(priority)
    if labels:
        for k, v in labels.items():
            spec.labels[str(k)] = str(v)
    # Made here, not by the server, so a call repeated after a lost answer
    # finds the task the first one made.
    spec.request_id = request_id if request_id is not None else f"py-{uuid.uuid4().hex}"
    return spec


def spec_from_dict(d: Mapping[str, Any]) -> pb.TaskSpec:
    """submit_many's dict (submit()'s keyword names) as a TaskSpec."""
    if not isinstance(d, Mapping):
        raise errors.InvalidArgument(f"spec: must be a dict, got {type(d).__name__}",
                                     field="spec")
    unknown = [k for k in d if k not in SUBMIT_KEYS]
    if unknown:
        raise errors.InvalidArgument(f"{unknown[0]}: not a submit() argument (one of "
                                     f"{', '.join(SUBMIT_KEYS)})", field=str(unknown[0]))
    for k in ("kind", "range"):
        if k not in d:
            raise errors.InvalidArgument(f"{k}: required", field=k)
    rest = {k: v for k, v in d.items() if k not in ("kind", "range")}
    return task_spec(d["kind"], d["range"], **rest)


def list_tasks_request(state=None, kind=None, labels=None, page_size=1000) -> pb.ListTasksRequest:
    req = pb.ListTasksRequest(states=_states(state), kind=kind or "", page_size=page_size)
    for k, v in (labels or {}).items():
        req.labels[str(k)] = str(v)
    return req


def list_subtasks_request(task_id: str, state=None) -> pb.ListSubtasksRequest:
    return pb.ListSubtasksRequest(task_id=task_id, states=_states(state), page_size=1000)


def server_too_old(address: str, what: str) -> errors.ServerTooOld:
    return errors.ServerTooOld(
        f"the server at {address} does not offer {what}: it is older than this client needs "
        f"(API version {API_VERSION}); upgrade orchard-server")
