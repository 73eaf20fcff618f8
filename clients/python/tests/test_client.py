"""orchard.Client against a real server and worker: what a user relies on."""
from __future__ import annotations

import datetime as dt
import sys

import grpc
import pytest

import orchard
from orchard import Outcome, State
from harness import wait_for


# This test verifies that the package under test is the installed one (the
# venv's), not the source tree.
def test_package_is_the_installed_one():
    assert "site-packages" in orchard.__file__, orchard.__file__


# This test verifies submit -> wait -> result with typed fields: enums,
# datetimes, decoded params and result, subtask counts.
def test_submit_wait_result(running, client):
    h = client.submit("sum", range=(0, 1000), subtasks=4, params={"x": 1},
                      labels={"team": "data"}, deadline=dt.timedelta(minutes=5))
    assert h.id.startswith("t-")
    task = h.wait(timeout=60)
    assert task.state is State.TERMINATED and task.state.is_terminal
    assert task.outcome is Outcome.SUCCEEDED
    assert task.result == {"sum": sum(range(1000))}
    assert h.result == {"sum": 499500}
    assert task.params == {"x": 1}
    assert task.labels == {"team": "data"}
    assert task.deadline == dt.timedelta(minutes=5)
    assert task.subtasks.total == 4 and task.subtasks.succeeded == 4
    assert isinstance(task.created, dt.datetime) and task.created.tzinfo is not None
    assert task.finished >= task.created
    assert task.request_id  # made by the client
    subs = list(h.subtasks())
    assert [s.index for s in subs] == [0, 1, 2, 3]
    assert sum(s.end - s.begin for s in subs) == 1000
    hist = list(h.history())
    assert hist[0].from_state is None or isinstance(hist[0].from_state, State)
    assert any(e.to_state is State.TERMINATED and e.subtask_index is None for e in hist)
    assert h.refresh().revision == task.revision
    assert "sum" in client.kinds()


# A slice program that fails each slice's first run ever (a marker file per
# slice remembers it), as a transient fault an operator then fixes would.
FAIL_ONCE = """
import os, sys, orchard.slice
s = orchard.slice.current()
marker = os.path.join(sys.argv[1], f"ran-{s.index}")
if s.index == 1 and not os.path.exists(marker):
    open(marker, "w").close()
    print("input not there yet", file=sys.stderr)
    sys.exit(3)
s.result({"sum": sum(range(s.begin, s.end))})
"""


# This test verifies that a failed task raises TaskFailed whose text carries
# the task's reason and the failed subtask's error, and that retry() re-runs
# only the failed slice, to the exact result.
def test_failure_and_retry(server, tmp_path):
    prog = tmp_path / "fail_once.py"
    prog.write_text(FAIL_ONCE)
    server.start_worker("x", slots=4, config={"exec": {"programs": {"fail-once": {
        "argv": [sys.executable, str(prog), str(tmp_path)]}}}})
    with orchard.Client(server.address, timeout=15) as client:
        server.wait_worker(client, "x")
        h = client.submit("exec", range=(0, 100), subtasks=4, max_attempts=1,
                          params={"program": "fail-once"})
        with pytest.raises(orchard.TaskFailed) as e:
            h.wait(timeout=60)
        t = e.value.task
        assert t.state is State.ERROR and t.outcome is Outcome.FAILED
        assert t.reason and t.reason in str(e.value)
        assert [s.index for s in e.value.failed_subtasks] == [1]
        assert "input not there yet" in e.value.failed_subtasks[0].error
        assert "subtask 1" in str(e.value)
        assert h.retry().state is State.PREPARING
        task = h.wait(timeout=60)
        assert [r["sum"] for r in task.result["results"]] == [
            sum(range(b, b + 25)) for b in (0, 25, 50, 75)]
        assert task.generation == 1
        assert [(s.index, s.attempt) for s in h.subtasks()] == [(0, 1), (1, 1), (2, 1), (3, 1)]
        # Re-run: slice 1 and any the failure cancelled mid-way, never one that succeeded.
        retried = {e.subtask_index for e in h.history() if e.event == "RetryRequested"}
        assert 1 in retried and None in retried


# This test verifies that cancel() stops a running task and wait() raises
# TaskCancelled.
def test_cancel(running, client):
    h = client.submit("sleep", range=(0, 2), subtasks=2, params={"ms": 60000})
    for t in h.watch(timeout=30):
        if t.subtasks.running > 0:
            break
    h.cancel("changed my mind")
    with pytest.raises(orchard.TaskCancelled) as e:
        h.wait(timeout=30)
    assert e.value.task.outcome is Outcome.CANCELLED
    assert e.value.task.state is State.TERMINATED


# This test verifies that watch() survives a kill -9 and restart of the
# server: it reconnects, resumes after the last revision, and ends at the
# terminal state with the exact result; revisions only grow.
def test_watch_across_server_restart(running, client):
    h = client.submit("flaky", range=(0, 40), subtasks=4, params={"ms": 700},
                      parallelism=1)
    seen = []
    restarted = False
    for t in h.watch(timeout=120):
        seen.append(t)
        if not restarted and t.state is State.RUNNING:
            running.kill_server()
            running.start_server()
            restarted = True
    assert restarted
    assert seen[-1].state is State.TERMINATED and seen[-1].outcome is Outcome.SUCCEEDED
    assert seen[-1].result == {"sum": sum(range(40))}
    revs = [t.revision for t in seen]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


# This test verifies that tasks() and subtasks() page lazily through more
# than two pages: 2,500 tasks, and a task of 2,500 subtasks.
def test_paging_over_2500(running, client):
    specs = [{"kind": "noop", "range": (0, 1), "labels": {"set": "paging"}}
             for _ in range(2500)]
    handles = client.submit_many(specs)
    assert all(isinstance(h, orchard.TaskHandle) for h in handles)
    ids = [t.id for t in client.tasks(labels={"set": "paging"})]
    assert len(ids) == 2500 and set(ids) == {h.id for h in handles}
    it = client.tasks(kind="nothing-like-this")
    assert list(it) == []
    big = client.submit("noop", range=(0, 2500), subtasks=2500)
    assert big.wait(timeout=120).result == {"count": 2500}
    subs = list(big.subtasks())
    assert [s.index for s in subs] == list(range(2500))
    assert len(list(big.subtasks(state="Terminated"))) == 2500
    assert list(big.subtasks(state=State.ERROR)) == []


# This test verifies that submit_many answers in order: a handle for each
# good spec and the exception, with the field, for each bad one.
def test_submit_many_with_one_bad_spec(running, client):
    out = client.submit_many([
        {"kind": "sum", "range": (0, 10)},
        {"kind": "sum", "range": (10, 5)},
        {"kind": "sum", "range": (0, 10), "colour": "red"},
        {"kind": "sum", "range": (0, 10), "max_attempts": 1000},
        {"kind": "sum", "range": (0, 20), "subtasks": 2},
    ])
    assert isinstance(out[0], orchard.TaskHandle)
    assert isinstance(out[1], orchard.InvalidArgument) and out[1].field == "range"
    assert isinstance(out[2], orchard.InvalidArgument) and out[2].field == "colour"
    assert isinstance(out[3], orchard.InvalidArgument)
    assert out[3].field == "policy.max_attempts"
    assert isinstance(out[4], orchard.TaskHandle)
    assert out[0].wait(timeout=60).result == {"sum": 45}
    assert out[4].wait(timeout=60).result == {"sum": 190}
    assert len(list(client.tasks())) == 2


# This test verifies that a resubmit with the same request_id (as after a
# lost answer) returns the same task, singly and batched.
def test_idempotent_resubmit(server, client):
    a = client.submit("noop", range=(0, 5), request_id="nightly-1")
    b = client.submit("noop", range=(0, 5), request_id="nightly-1")
    assert a.id == b.id
    specs = [{"kind": "noop", "range": (0, 5), "request_id": f"r{i}"} for i in range(3)]
    first = client.submit_many(specs)
    again = client.submit_many(specs)
    assert [h.id for h in first] == [h.id for h in again]
    assert len(list(client.tasks())) == 4


# This test verifies that every gRPC code has its exception class, importable
# from orchard, and that the server's refusals arrive as them with the field.
def test_every_exception_class(server, client):
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        name = "".join(w.capitalize() for w in code.name.split("_"))
        cls = getattr(orchard, name)
        e = orchard.errors.from_code(code, "why", "f")
        assert type(e) is cls and isinstance(e, orchard.OrchardError)
        assert e.code is code and e.field == "f" and "why" in str(e)
    with pytest.raises(orchard.InvalidArgument) as e:
        client.submit("sum", range=(0, 10), max_attempts=1000)
    assert e.value.field == "policy.max_attempts"
    assert "max_attempts" in e.value.message
    with pytest.raises(orchard.InvalidArgument) as e:
        client.submit("", range=(0, 10))
    assert e.value.field == "kind"
    with pytest.raises(orchard.NotFound):
        client.get("t-doesnotexist0000")
    with pytest.raises(orchard.NotFound):
        client.task("t-doesnotexist0000").wait(timeout=10)
    h = client.submit("noop", range=(0, 1))
    with pytest.raises(orchard.FailedPrecondition):
        h.retry()  # not in ERROR
    with pytest.raises(orchard.InvalidArgument) as e:
        list(client.tasks(state="Sleeping"))
    dead = orchard.Client("127.0.0.1:1", timeout=1,
                          retry=orchard.RetryPolicy(initial=0.05, cap=0.2, total=1))
    with pytest.raises(orchard.Unavailable):
        dead.get("t-x")
    with pytest.raises(orchard.WaitTimeout):
        h2 = client.submit("noop", range=(0, 1))  # no worker: never ends
        h2.wait(timeout=0.5)


# This test verifies server_info(): the version and API level the client checks.
def test_server_info(server, client):
    info = client.server_info()
    assert info.api_version >= orchard.API_VERSION
    assert info.version and info.store == "sqlite"
    assert "submit_tasks" in info.features and info.max_submit_batch == 1000


# This test verifies that the gRPC health service answers per service name
# (and for the server as a whole), so a load balancer can ask for either.
def test_health_per_service(server):
    def check(service):
        ch = grpc.insecure_channel(server.address)
        call = ch.unary_unary("/grpc.health.v1.Health/Check")
        req = service.encode()
        body = (b"\x0a" + bytes([len(req)]) + req) if req else b""
        try:
            return call(body, timeout=5)  # HealthCheckResponse: status = 1 (SERVING)
        finally:
            ch.close()
    assert check("") == b"\x08\x01"
    assert check("orchard.v1.TaskService") == b"\x08\x01"
    assert check("orchard.v1.WorkerService") == b"\x08\x01"
    with pytest.raises(grpc.RpcError) as e:
        check("orchard.v1.NoSuchService")
    assert e.value.code() is grpc.StatusCode.NOT_FOUND


# This test verifies from_env(): ORCHARD_SERVER over the config file.
def test_from_env(server, tmp_path, monkeypatch):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"server": "127.0.0.1:1"}')
    monkeypatch.setenv("ORCHARD_CONFIG", str(cfg))
    monkeypatch.delenv("ORCHARD_SERVER", raising=False)
    assert orchard.Client.from_env().server == "127.0.0.1:1"
    monkeypatch.setenv("ORCHARD_SERVER", server.address)
    with orchard.Client.from_env() as c:
        assert c.server == server.address
        assert c.server_info().version


# This test verifies that reflection (v1alpha: Debian 12's gRPC 1.51 has no
# v1) lists both services, so grpcurl works without the proto files.
def test_reflection_lists_the_services(server):
    ch = grpc.insecure_channel(server.address)
    try:
        call = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        # ServerReflectionRequest{list_services: ""} (field 7, length 0).
        [resp] = list(call(iter([b"\x3a\x00"]), timeout=5))
    finally:
        ch.close()
    assert b"orchard.v1.TaskService" in resp and b"orchard.v1.WorkerService" in resp
