#!/usr/bin/python3
"""orchard-server and orchard-worker read their flags from --config FILE.

    daemon-config-test.py BUILD_DIR SOURCE_DIR

This test verifies, with the real binaries on loopback (port 0), that
  - every server flag can come from a JSON file, and a flag on the command
    line wins over it;
  - a key that is no flag is refused, naming the key, and the server exits 2
    without serving;
  - the worker takes server, name and slots from its file next to its exec
    section, and a flag wins over the file;
  - the files the package installs (deploy/etc/orchard/*.json) and the
    documented examples (deploy/examples/*.json) are accepted.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD, SRC = sys.argv[1], sys.argv[2]
SERVER = os.path.join(BUILD, "server/orchard-server")
WORKER = os.path.join(BUILD, "worker/orchard-worker")
tmp = tempfile.mkdtemp(prefix="orchard-config-test.")
procs = []
failures = []


def fail(msg):
    failures.append(msg)
    print("daemon-config-test: FAIL:", msg, flush=True)


def wait_for(what, cond, timeout=20, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write(name, obj):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def start(argv, name):
    log = os.path.join(tmp, name + ".log")
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p, log


def stop(p):
    p.terminate()
    p.wait(timeout=40)


def start_server(name, config, *flags):
    """Starts a server whose ports go to files; returns (proc, log, grpc, http)."""
    p, log = start([SERVER, "--config", config, *flags], name)
    wait_for(f"{name} to listen", lambda: "listening on" in read(log), proc=p)
    gport = wait_for("port file", lambda: read(os.path.join(tmp, name + ".port")).strip())
    hport = wait_for("http port file", lambda: read(os.path.join(tmp, name + ".hport")).strip())
    return p, log, gport, hport


def server_config(name, **more):
    return {"listen": "127.0.0.1:0", "http": "127.0.0.1:0", "db": os.path.join(tmp, name + ".db"),
            "port-file": os.path.join(tmp, name + ".port"),
            "http-port-file": os.path.join(tmp, name + ".hport"), **more}


def workers(hport):
    with urllib.request.urlopen(f"http://127.0.0.1:{hport}/api/v1/workers", timeout=5) as r:
        return json.load(r)["workers"]


try:
    # Every server flag from the file.
    cfg = write("s1.json", server_config("s1", **{"lease-ttl": "2s", "sync": "full",
                                                  "log-level": "debug", "log-format": "json"}))
    p, log, gport, hport = start_server("s1", cfg)
    first = json.loads(read(log).splitlines()[0])  # log-format json
    if "lease ttl 2000 ms" not in first["msg"] or "synchronous=full" not in first["msg"]:
        fail(f"server did not take lease-ttl and sync from the file: {first['msg']}")
    if not os.path.exists(os.path.join(tmp, "s1.db")):
        fail("server did not open the db the file names")
    # The worker: server, name, slots from its file, next to an exec section.
    wcfg = write("w1.json", {"server": f"127.0.0.1:{gport}", "name": "from-file", "slots": 3,
                             "max-reconcilers": 5, "log-format": "json", "exec": {"programs": {}}})
    w, wlog = start([WORKER, "--config", wcfg], "w1")
    got = wait_for("worker from-file to register", lambda: [
        x for x in workers(hport) if x.get("name") == "from-file"], proc=w)
    if got[0].get("slots") != 3:
        fail(f"worker slots from the file: want 3, got {got[0]}")
    # A flag wins over the worker's file.
    w2, _ = start([WORKER, "--config", wcfg, "--name", "from-flag", "--slots", "2"], "w2")
    got = wait_for("worker from-flag to register", lambda: [
        x for x in workers(hport) if x.get("name") == "from-flag"], proc=w2)
    if got[0].get("slots") != 2:
        fail(f"worker --slots 2 did not win over the file's 3: {got[0]}")
    for x in (w, w2, p):
        stop(x)
    print("daemon-config-test: ok: server and worker flags from files, worker flags win")

    # A server flag wins over the file.
    cfg = write("s2.json", server_config("s2", **{"lease-ttl": "2s"}))
    p, log, _, _ = start_server("s2", cfg, "--lease-ttl", "3s")
    if "lease ttl 3000 ms" not in read(log):
        fail(f"--lease-ttl 3s did not win over the file's 2s: {read(log).splitlines()[0]}")
    stop(p)
    print("daemon-config-test: ok: a server flag wins over the file")

    # Unknown keys, bad values and bad files stop the server before it serves.
    for name, text, want in (("bad-key", {"lisen": "127.0.0.1:0"}, '"lisen"'),
                             ("bad-value", {"sync": "sometimes"}, "sometimes"),
                             ("bad-json", '{"listen": ', "not valid JSON")):
        r = subprocess.run([SERVER, "--config", write(name + ".json", text),
                            "--db", os.path.join(tmp, name + ".db")],
                           capture_output=True, text=True, timeout=20)
        if r.returncode == 0 or want not in r.stderr + r.stdout:
            fail(f"{name}: want an error naming {want!r}, got exit {r.returncode}: {r.stderr.strip()}")
        elif os.path.exists(os.path.join(tmp, name + ".db")):
            fail(f"{name}: the server opened its db before refusing the config")
    print("daemon-config-test: ok: unknown keys, bad values and bad JSON are refused by name")

    # The installed defaults and the documented examples are accepted (their
    # addresses and paths overridden by flags, as the unit's args could).
    over = lambda n: ["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                      "--db", os.path.join(tmp, n + ".db"),
                      "--port-file", os.path.join(tmp, n + ".port"),
                      "--http-port-file", os.path.join(tmp, n + ".hport")]
    for n, path in (("etc-server", "deploy/etc/orchard/server.json"),
                    ("example-server", "deploy/examples/server.json")):
        p, log = start([SERVER, "--config", os.path.join(SRC, path), *over(n)], n)
        wait_for(f"{path} to start a server", lambda: "listening on" in read(log), proc=p)
        gport = wait_for("port", lambda: read(os.path.join(tmp, n + ".port")).strip())
        stop(p)
    p, log = start([SERVER, *over("srv")], "srv")
    wait_for("a server", lambda: "listening on" in read(log), proc=p)
    gport = wait_for("port", lambda: read(os.path.join(tmp, "srv.port")).strip())
    for n, path in (("etc-worker", "deploy/etc/orchard/worker.json"),
                    ("example-worker", "deploy/examples/worker.json")):
        w, wlog = start([WORKER, "--config", os.path.join(SRC, path), "--server",
                         f"127.0.0.1:{gport}", "--name", n], n)
        wait_for(f"{path} to start a worker that registers", lambda: "registered as" in read(wlog),
                 proc=w)
        stop(w)
    stop(p)
    print("daemon-config-test: ok: deploy/etc/orchard and deploy/examples files are accepted")
except Exception as e:  # a wait that failed: show the logs
    fail(str(e))
    for f in sorted(os.listdir(tmp)):
        if f.endswith(".log"):
            print(f"---- {f}\n{read(os.path.join(tmp, f))[-1500:]}")
finally:
    for x in procs:
        if x.poll() is None:
            x.kill()
            x.wait()
    subprocess.run(["rm", "-rf", tmp])
print("daemon-config-test:", "FAILED" if failures else "all checks passed")
sys.exit(1 if failures else 0)
