#!/usr/bin/python3
"""The units' system-call filters let the daemons do their work.

    syscall-test.py BUILD_DIR SOURCE_DIR

systemd is not PID 1 here, so a unit's SystemCallFilter= is never applied in
the tests; a call outside it would fail in production with EPERM
(SystemCallErrorNumber=EPERM), silently. This test runs orchard-server and
orchard-worker under strace (as an unprivileged user when run as root, as
the units do) through a real workload: start, register, a sum task watched
to its end, the HTTP API and /metrics, SIGTERM drain and shutdown. Every
system call they made must be allowed by their unit's SystemCallFilter=
lines (allow lists minus ~deny lists, groups expanded by
`systemd-analyze syscall-filter`). The worker's exec programs are not
traced: they are the operator's. Skipped (77) without strace.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def expand(group, seen=None):
    """The system calls of a systemd syscall group, nested groups included."""
    seen = seen if seen is not None else set()
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    calls = set()
    for line in out[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        calls |= expand(word, seen) if word.startswith("@") else {word}
    return calls


def allowed_by(unit):
    allow, deny = set(), set()
    for line in open(os.path.join(SRC, "deploy/systemd", unit)):
        m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
        if not m:
            continue
        names = set()
        for w in m.group(2).split():
            names |= expand(w) if w.startswith("@") else {w}
        (deny if m.group(1) else allow).update(names)
    return allow - deny


def traced_calls(path):
    calls = set()
    for f in os.listdir(os.path.dirname(path)):
        if f.startswith(os.path.basename(path)):
            for line in open(os.path.join(os.path.dirname(path), f)):
                m = re.match(r"(?:\d+\s+)?([a-z_0-9]+)\(", line)
                if m:
                    calls.add(m.group(1))
    return calls


def wait_for(what, cond, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"syscall-test: FAIL: timed out waiting for {what}")
        time.sleep(0.05)


def main():
    if not shutil.which("strace"):
        print("syscall-test: SKIPPED: strace missing (apt-get install strace)")
        return 77
    tmp = tempfile.mkdtemp(prefix="orchard-syscall-test.")
    os.chmod(tmp, 0o777)
    # As the units do, run the daemons unprivileged (SQLite, for one, calls
    # fchown only as root).
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    procs = []
    try:
        def start(name, argv):
            p = subprocess.Popen(["strace", "-f", "-qq", "-ff", "-o", os.path.join(tmp, name + ".trace"),
                                  *as_user, *argv], stdout=open(os.path.join(tmp, name + ".log"), "w"),
                                 stderr=subprocess.STDOUT, cwd=tmp)
            procs.append(p)
            return p

        def read(f):
            try:
                return open(os.path.join(tmp, f)).read().strip()
            except FileNotFoundError:
                return ""

        server = start("server", [os.path.join(BUILD, "server/orchard-server"), "--listen", "127.0.0.1:0",
                                  "--port-file", "port", "--http", "127.0.0.1:0",
                                  "--http-port-file", "hport", "--db", "orchard.db", "--lease-ttl", "2s"])
        try:
            wait_for("the server's ports", lambda: read("port") and read("hport"))
        except SystemExit:
            print(read("server.log"))
            raise
        addr = f"127.0.0.1:{read('port')}"
        worker = start("worker", [os.path.join(BUILD, "worker/orchard-worker"), "--server", addr,
                                  "--slots", "2", "--name", "traced"])
        ctl = os.path.join(BUILD, "cli/orchardctl")
        task = subprocess.run([ctl, "--server", addr, "submit", "--kind", "sum", "--range", "0:100000",
                               "--subtasks", "20"], capture_output=True, text=True, check=True).stdout.strip()
        r = subprocess.run([ctl, "--server", addr, "watch", task], capture_output=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit(f"syscall-test: FAIL: the task did not succeed: {r.stdout[-300:]}")
        for path in ("/metrics", "/healthz", "/readyz", "/api/v1/tasks", "/api/v1/workers", "/"):
            urllib.request.urlopen(f"http://127.0.0.1:{read('hport')}{path}", timeout=5).read()
        # SIGTERM to the daemons (strace passes it on), the worker first.
        for p in (worker, server):
            subprocess.run(["pkill", "-TERM", "-P", str(p.pid)])  # runuser's or strace's child
            p.terminate()
            p.wait(timeout=40)
        fail = False
        for name, unit in (("server", "orchard-server.service"), ("worker", "orchard-worker.service")):
            used = traced_calls(os.path.join(tmp, name + ".trace"))
            # runuser's own calls (setuid, ...) happen before the exec.
            if as_user:
                used = traced_calls_after_exec(os.path.join(tmp, name + ".trace"), name)
            outside = sorted(used - allowed_by(unit))
            if outside:
                print(f"syscall-test: FAIL: orchard-{name} made calls {unit} forbids: {' '.join(outside)}")
                fail = True
            else:
                print(f"syscall-test: ok: orchard-{name}: {len(used)} distinct system calls, all allowed by {unit}")
        return 1 if fail else 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def traced_calls_after_exec(prefix, name):
    """The calls of the orchard binary: in each traced process, from its
    execve of the orchard binary on (threads inherit; runuser's setup before
    the exec is not the daemon's)."""
    d, base = os.path.dirname(prefix), os.path.basename(prefix)
    calls = set()
    binary = f"orchard-{name}"
    for f in sorted(os.listdir(d)):
        if not f.startswith(base):
            continue
        lines = open(os.path.join(d, f)).read().splitlines()
        started = not any(l.startswith("execve(") for l in lines)  # a thread of the daemon
        for line in lines:
            if line.startswith("execve("):
                started = binary in line.split(",")[0]
                if not started:
                    continue
            if started:
                m = re.match(r"([a-z_0-9]+)\(", line)
                if m:
                    calls.add(m.group(1))
    return calls


if __name__ == "__main__":
    sys.exit(main())
