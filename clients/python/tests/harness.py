"""The process harness of the Python tests (shared with examples/python): a
real orchard-server and orchard-workers from the build (ORCHARD_BUILD_DIR), on free ports in a temp
dir per test. Nothing sleeps hoping a race is over: every wait polls a
condition with a deadline (`wait_for`)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("ORCHARD_BUILD_DIR", Path(__file__).resolve().parents[3] / "build"))
SERVER_BIN = BUILD / "server" / "orchard-server"
WORKER_BIN = BUILD / "worker" / "orchard-worker"


def wait_for(probe, timeout: float, what: str, interval: float = 0.05):
    """Polls `probe()` until it returns a true value (returned), or fails the
    test naming `what` when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Exception as e:  # not yet (a server restarting, say)
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Proc:
    def __init__(self, name, argv, dir_: Path):
        self.name = name
        self.log = dir_ / f"{name}.log"
        with open(self.log, "ab") as out:
            self.p = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()

    def tail(self, n=30):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class Cluster:
    def __init__(self, dir_: Path):
        self.dir = dir_
        self.port = 0
        self.server = None
        self.workers = {}
        self.retired = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_server(self, lease_ttl="2s"):
        assert self.server is None or self.server.p.poll() is not None
        port_file = self.dir / "port"
        if port_file.exists():
            port_file.unlink()
        if self.server:
            self.retired.append(self.server)
        self.server = Proc(f"server{len(self.retired)}", [
            SERVER_BIN, "--listen", f"127.0.0.1:{self.port}", "--db", self.dir / "orchard.db",
            "--port-file", port_file, "--lease-ttl", lease_ttl, "--log-level", "info"], self.dir)

        def ready():
            if self.server.p.poll() is not None:
                raise AssertionError(f"server exited {self.server.p.returncode}:\n"
                                     f"{self.server.tail()}")
            return port_file.exists() and port_file.read_text().strip()
        self.port = int(wait_for(ready, 15, "the server's port file"))
        return self.server

    def kill_server(self):
        self.server.kill()

    def start_worker(self, name="w", slots=4, config=None):
        argv = [WORKER_BIN, "--server", self.address, "--slots", slots, "--name", name,
                "--log-level", "info"]
        if config is not None:
            path = self.dir / f"{name}.json"
            path.write_text(json.dumps(config))
            argv += ["--config", path]
        self.workers[name] = Proc(f"worker-{name}", argv, self.dir)
        return self.workers[name]

    def wait_worker(self, client, name, timeout=30):
        wait_for(lambda: any(w.name == name and w.alive for w in client.workers()), timeout,
                 f"worker {name} to register")

    def close(self):
        for w in self.workers.values():
            w.kill()
        if self.server:
            self.server.kill()

    def dump(self):
        for p in self.retired + ([self.server] if self.server else []) + list(self.workers.values()):
            sys.stderr.write(f"---- {p.name} ({p.log})\n{p.tail()}\n")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def cluster(request):
    assert SERVER_BIN.exists(), f"{SERVER_BIN} missing: build first (ORCHARD_BUILD_DIR={BUILD})"
    d = Path(tempfile.mkdtemp(prefix="orchard-py-"))
    c = Cluster(d)
    yield c
    c.close()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        c.dump()
        sys.stderr.write(f"kept {d}\n")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(cluster):
    cluster.start_server()
    return cluster


@pytest.fixture
def client(server):
    import orchard
    with orchard.Client(server.address, timeout=15) as c:
        yield c


@pytest.fixture
def running(server, client):
    """A server, a client and one worker with 4 slots, registered."""
    server.start_worker("w1", slots=4)
    server.wait_worker(client, "w1")
    return server
