#!/usr/bin/env python3
"""The Python twin of `orchard-bench --only many-batched`: 10,000 one-subtask
noop tasks submitted with submit_many in batches of 100 from one client, every
result checked exact, tasks/s printed; and what the library adds per task over
the raw generated stub (the same SubmitTasks calls with ready-made protos).

    bench_submit_many.py --build BUILD_DIR [--tasks 10000] [--batch 100]

Starts its own orchard-server and two workers (4 slots each) in a temp dir,
as orchard-bench does. Prints one JSON object.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

import orchard
from orchard.v1 import orchard_pb2 as pb
from orchard.v1 import orchard_pb2_grpc as pb_grpc


def start(build, d):
    port_file = os.path.join(d, "port")
    procs = [subprocess.Popen(
        [os.path.join(build, "server", "orchard-server"), "--listen", "127.0.0.1:0", "--db",
         os.path.join(d, "orchard.db"), "--port-file", port_file, "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "server.log"), "w"),
        start_new_session=True)]
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file):
        if time.monotonic() > deadline or procs[0].poll() is not None:
            sys.exit("bench: the server did not start; see " + d)
        time.sleep(0.02)
    address = "127.0.0.1:" + open(port_file).read().strip()
    for i in range(2):
        procs.append(subprocess.Popen(
            [os.path.join(build, "worker", "orchard-worker"), "--server", address, "--slots", "4",
             "--name", f"bench-{i}", "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, f"worker{i}.log"), "w"),
            start_new_session=True))
    return address, procs


def wait_all_ended(client, label, total, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = sum(1 for _ in client.tasks(state=["Preparing", "Running", "Terminating"],
                                             labels=label))
        if active == 0:
            return
        time.sleep(0.1)
    sys.exit(f"bench: tasks still active after {timeout} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=100)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="orchard-pybench-")
    address, procs = start(os.path.abspath(a.build), d)
    try:
        client = orchard.Client(address, timeout=30)
        deadline = time.monotonic() + 20
        while sum(w.alive for w in client.workers()) < 2:
            if time.monotonic() > deadline:
                sys.exit("bench: workers did not register")
            time.sleep(0.02)

        # The library: dicts in, TaskHandles (with typed Task snapshots) out.
        label = {"bench": "library"}
        t0 = time.perf_counter()
        handles = []
        for lo in range(0, a.tasks, a.batch):
            n = min(a.batch, a.tasks - lo)
            out = client.submit_many([{"kind": "noop", "range": (0, 1), "labels": label}] * n)
            bad = [e for e in out if not isinstance(e, orchard.TaskHandle)]
            if bad:
                sys.exit(f"bench: refused: {bad[0]}")
            handles += out
        lib_submit = time.perf_counter() - t0
        wait_all_ended(client, label, a.tasks)
        lib_total = time.perf_counter() - t0

        # The raw stub: protos built before the clock starts, responses unread.
        stub = pb_grpc.TaskServiceStub(grpc.insecure_channel(address))
        reqs = []
        for lo in range(0, a.tasks, a.batch):
            n = min(a.batch, a.tasks - lo)
            reqs.append(pb.SubmitTasksRequest(specs=[
                pb.TaskSpec(kind="noop", begin=0, end=1, split=pb.SplitPolicy(subtasks=1),
                            labels={"bench": "raw"}, request_id=f"raw-{lo}-{i}")
                for i in range(n)]))
        t0 = time.perf_counter()
        for r in reqs:
            stub.SubmitTasks(r, timeout=30)
        raw_submit = time.perf_counter() - t0
        wait_all_ended(client, {"bench": "raw"}, a.tasks)

        # Not timed: every task ended with the exact result.
        ids = {h.id for h in handles}
        done = 0
        for t in client.tasks(labels=label):
            if t.id in ids:
                if not t.succeeded or t.result != {"count": 1}:
                    sys.exit(f"bench: task {t.id} ended {t.state.name}/{t.outcome.name} "
                             f"with {t.result}")
                done += 1
        if done != a.tasks:
            sys.exit(f"bench: {done} of {a.tasks} tasks found")
        print(json.dumps({
            "workload": "python-many-batched", "tasks": a.tasks, "batch": a.batch,
            "submit_seconds": round(lib_submit, 3), "seconds": round(lib_total, 3),
            "submits_per_s": int(a.tasks / lib_submit), "tasks_per_s": int(a.tasks / lib_total),
            "raw_stub_submits_per_s": int(a.tasks / raw_submit),
            "library_us_per_task": round(1e6 * lib_submit / a.tasks, 1),
            "raw_stub_us_per_task": round(1e6 * raw_submit / a.tasks, 1),
            "library_adds_us_per_task": round(1e6 * (lib_submit - raw_submit) / a.tasks, 1),
        }))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
